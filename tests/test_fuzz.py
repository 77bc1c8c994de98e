"""Fuzz test of the scoring path (issue 17): random articles never lose a row, never crash.

Hypothesis generates articles from random Unicode (lone surrogates and control characters
included), odd line endings and long lines, writes them as text files and as a JSONL file,
and checks that every input gets exactly one article row, that sentence offsets slice the
article's cleaned text exactly, that no exception escapes, and that the local and the Ray
engine give the same rows. A fixed CI profile (derandomised, bounded examples) keeps the
time bounded; the Ray part uses one Ray session for the whole module.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stance.scoring.local import score_files
from stance.scoring.readers import clean_text
from stance.text import has_visible_text

settings.register_profile("stance-ci", derandomize=True, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                                 HealthCheck.data_too_large])
PROFILE = settings.get_profile("stance-ci")

PIECES = st.sampled_from([
    "Encryption protects everyone. ", "Scanning finds abuse. ", "the vote is on tuesday. ", "etc. ", "Dr. ",
    "et al. [2022] ", "(s. (122)) ", "\n", "\r", "\r\n", "\x1f1. ", "\x1c", "\x00", "\u200b", "\ufeff", "\u2028",
    "\ud83d", "\udc00", "…", "— ", "• ", "1) ", "\t", "   ", "\"Quoted.\" ", "'single' ", "??? ", "!!! ",
])
TEXTS = st.one_of(
    st.lists(st.one_of(PIECES, st.text(max_size=20)), max_size=40).map("".join),
    # one long line without capitals after full stops (speech-to-text)
    st.integers(min_value=50, max_value=400).map(lambda n: "we met today. it was fine. " * n),
    st.text(max_size=200),
)


def write_inputs(folder: Path, texts: list[str]) -> list[Path]:
    """The texts as text files (raw UTF-8, surrogates passed through) and as one JSONL file."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for i, text in enumerate(texts):
        (folder / f"{i:03d}.txt").write_bytes(text.encode("utf-8", "surrogatepass"))
    table = folder.parent / f"{folder.name}.jsonl"
    # json.dumps escapes lone surrogates as \\udXXX, as scraped JSON holds them
    table.write_text("".join(json.dumps({"id": f"j{i}", "text": t}) + "\n" for i, t in enumerate(texts)),
                     encoding="utf-8")
    return [folder, table]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def check_rows(out: Path, texts: list[str]) -> tuple[list[dict], list[dict]]:
    articles, sentences = read_jsonl(out / "articles.jsonl"), read_jsonl(out / "sentences.jsonl")
    assert len(articles) == 2 * len(texts)  # one row per input: each file and each JSONL row
    from_files = {a["doc_id"]: a for a in articles[: len(texts)]}
    assert sorted(from_files) == [f"{i:03d}.txt" for i in range(len(texts))]
    for i, text in enumerate(texts):
        for doc_id in (f"{i:03d}.txt", f"j{i}"):
            article = next(a for a in articles if a["doc_id"] == doc_id)
            mine = [s for s in sentences if s["doc_id"] == doc_id]
            if article["error"] is not None:
                assert mine == [] and article["n_sentences"] == 0
                continue
            assert article["n_sentences"] == len(mine) > 0
            # the file is read as UTF-8 bytes: a lone surrogate written with surrogatepass is 3 bad bytes
            cleaned = clean_text(text)[0] if doc_id.startswith("j") else None
            for s in mine:
                assert s["start"] < s["end"] and has_visible_text(s["text"])
                if cleaned is not None:
                    assert cleaned[s["start"]: s["end"]] == s["text"]
            assert [s["start"] for s in mine] == sorted(s["start"] for s in mine)
    return articles, sentences


@settings(PROFILE, max_examples=25)
@given(texts=st.lists(TEXTS, min_size=1, max_size=6))
def test_local_engine_on_random_articles(tmp_path_factory, tiny_baseline, texts):
    work = tmp_path_factory.mktemp("fuzz")
    inputs = write_inputs(work / "in", texts)
    counts = score_files(inputs, work / "out", model=tiny_baseline, force=True)
    articles, _ = check_rows(work / "out", texts)
    assert counts["articles"] == len(articles) and counts["errors"] == sum(a["error"] is not None for a in articles)
    # an invisible-only text is exactly the one "empty" error
    for i, text in enumerate(texts):
        row = next(a for a in articles if a["doc_id"] == f"j{i}")
        assert (row["error"] is not None and "empty" in row["error"]) == (not has_visible_text(clean_text(text)[0]))


@pytest.mark.ray
def test_ray_engine_agrees_with_the_local_engine_on_random_articles(tmp_path_factory, tiny_baseline):
    ray = pytest.importorskip("ray")
    from stance.scoring import distributed

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        @settings(PROFILE, max_examples=3)
        @given(texts=st.lists(TEXTS, min_size=3, max_size=12))
        def same_rows(texts: list[str]) -> None:
            work = tmp_path_factory.mktemp("fuzz-ray")
            inputs = write_inputs(work / "in", texts)
            stdin = b"Encryption protects everyone.\r\n\x1f1. Scan."
            local = score_files([*inputs, "-"], work / "local", model=tiny_baseline, stdin=io.BytesIO(stdin))
            remote = distributed.score_files([*inputs, "-"], work / "ray", model=tiny_baseline, actors=2,
                                             articles_per_batch=4, stdin=io.BytesIO(stdin))
            assert local == remote
            for name in ("articles.jsonl", "sentences.jsonl"):
                assert read_jsonl(work / "ray" / name) == read_jsonl(work / "local" / name)

        same_rows()
    finally:
        ray.shutdown()
