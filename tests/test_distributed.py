"""The Ray Data engine gives the rows of the local engine (the same reader, kernel and writers)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from stance import paths
from stance.scoring.kernel import ARTICLE_COLUMNS, SENTENCE_COLUMNS
from stance.scoring.local import score_files as local_score_files
from stance.segment import segment

pytestmark = pytest.mark.ray
ray = pytest.importorskip("ray")

TOLERANCE = 1e-6
MALFORMED_LINES = [
    '{"id": "ok-1", "text": "End-to-end encryption protects everyone. Scanning breaks it."}',
    '{"id": "missing"}',
    "[1, 2, 3]",
    '{"id": "empty", "text": ""}',
    '{"id": "blank", "text": "   "}',
    '{"id": "number", "text": 42}',
    "{not json",
    '{"id": "ok-2", "text": "Platforms must detect child sexual abuse material."}',
]
MALFORMED_ERRORS = 6


@pytest.fixture(scope="module", autouse=True)
def ray_cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> str:
    saved = paths.models_dir() / "baseline"
    if (saved / "config.json").exists():
        return str(saved)
    from stance.evaluation.shipping import train_and_save
    from stance.evaluation.specs import BASELINE_SPECS

    folder = tmp_path_factory.mktemp("model") / "baseline"
    train_and_save(BASELINE_SPECS[1], folder, extra="none")
    return str(folder)


def seed_records() -> list[dict[str, str]]:
    return [{"id": p.stem, "text": p.read_text(encoding="utf-8")} for p in sorted(paths.seeds_dir().glob("*.txt"))]


def generated_records(n: int, seed: int = 0) -> list[dict[str, str]]:
    """``n`` short articles made deterministically of 1-8 seed sentences each."""
    sentences = [s.text for r in seed_records() for s in segment(r["text"])]
    rng = random.Random(seed)
    return [{"id": f"gen-{i:05d}", "text": ("\n" if i % 3 == 0 else " ").join(rng.sample(sentences, rng.randint(1, 8)))}
            for i in range(n)]


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def single_process(inputs: list, model: str, out: Path, **options) -> dict[str, int]:
    return local_score_files(inputs, out, model=model, **options)


def assert_same_rows(got: list[dict], expected: list[dict], columns: list[str]) -> None:
    assert len(got) == len(expected)
    for mine, theirs in zip(got, expected):
        assert list(mine) == columns
        for column in columns:
            if isinstance(theirs[column], float) and isinstance(mine[column], float):
                assert mine[column] == pytest.approx(theirs[column], abs=TOLERANCE), column
            else:
                assert mine[column] == theirs[column], (column, mine, theirs)


def assert_same_outputs(ray_out: Path, local_out: Path) -> None:
    for name, columns in (("sentences.jsonl", SENTENCE_COLUMNS), ("articles.jsonl", ARTICLE_COLUMNS)):
        assert_same_rows(read_jsonl(ray_out / name), read_jsonl(local_out / name), columns)


def test_import_stance_does_not_import_ray():
    code = "import sys, stance, stance.scoring.distributed; sys.exit('ray' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_missing_ray_says_how_to_install(monkeypatch):
    from stance.scoring.distributed import _ray

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r"pip install stance\[ray\]"):
        _ray()


def test_seeds_match_single_process(tmp_path, model):
    from stance.scoring.distributed import score_files

    seeds = write_jsonl(tmp_path / "seeds.jsonl", seed_records())
    counts = score_files([seeds], tmp_path / "ray", model=model, actors=1)
    expected = single_process([seeds], model, tmp_path / "local")
    assert counts == expected == {"articles": 5, "sentences": counts["sentences"], "errors": 0}
    assert_same_outputs(tmp_path / "ray", tmp_path / "local")


def test_folder_and_parquet_inputs(tmp_path, model):
    """Text files of a folder, and a Parquet file of the same articles, in one run."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from stance.scoring.distributed import score_files

    table = tmp_path / "seeds.parquet"
    pq.write_table(pa.Table.from_pylist(seed_records()), table)
    counts = score_files([paths.seeds_dir(), table], tmp_path / "ray", model=model, fmt="parquet",
                         articles_per_batch=4)
    single_process([paths.seeds_dir()], model, tmp_path / "local")
    assert counts["articles"] == 10 and counts["errors"] == 0
    sentences = pq.read_table(tmp_path / "ray" / "sentences.parquet").to_pylist()
    articles = pq.read_table(tmp_path / "ray" / "articles.parquet").to_pylist()
    assert pq.read_table(tmp_path / "ray" / "articles.parquet").column_names == ARTICLE_COLUMNS
    local_sentences = read_jsonl(tmp_path / "local" / "sentences.jsonl")
    local_articles = read_jsonl(tmp_path / "local" / "articles.jsonl")
    half = len(sentences) // 2
    assert_same_rows(sentences[:half], local_sentences, SENTENCE_COLUMNS)
    assert_same_rows(articles[:5], local_articles, ARTICLE_COLUMNS)
    # the Parquet rows: same predictions, ids from the id column, source the Parquet file
    for mine, theirs in zip(sentences[half:], local_sentences):
        assert mine["source"] == str(table) and mine["doc_id"] == Path(theirs["source"]).stem
        assert mine["label"] == theirs["label"] and mine["text"] == theirs["text"]


def test_score_dataset_matches_single_process(tmp_path, model):
    from stance.scoring.distributed import score_dataset

    records = seed_records()
    sentences, articles = score_dataset(ray.data.from_items(records, override_num_blocks=3), model=model, actors=2,
                                        batch_size=16, articles_per_batch=2)
    assert sentences.columns() == SENTENCE_COLUMNS and articles.columns() == ARTICLE_COLUMNS
    seeds = write_jsonl(tmp_path / "seeds.jsonl", records)
    single_process([seeds], model, tmp_path / "local")
    expected_sentences = read_jsonl(tmp_path / "local" / "sentences.jsonl")
    expected_articles = read_jsonl(tmp_path / "local" / "articles.jsonl")
    for row in expected_sentences + expected_articles:
        row["source"] = ""  # a dataset without a path column has no source
    assert_same_rows(sentences.take_all(), expected_sentences, SENTENCE_COLUMNS)
    assert_same_rows(articles.take_all(), expected_articles, ARTICLE_COLUMNS)


def test_generated_corpus_matches_single_process(tmp_path, model):
    from stance.scoring.distributed import score_files

    corpus = write_jsonl(tmp_path / "corpus.jsonl", generated_records(2000))
    counts = score_files([corpus], tmp_path / "ray", model=model, actors=2)
    expected = single_process([corpus], model, tmp_path / "local")
    assert counts == expected
    assert counts["articles"] == 2000 and counts["sentences"] > 5000
    assert_same_outputs(tmp_path / "ray", tmp_path / "local")


def test_malformed_rows_become_error_rows(tmp_path, model):
    from stance.scoring.distributed import score_dataset, score_files

    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(MALFORMED_LINES) + "\n", encoding="utf-8")
    counts = score_files([bad, tmp_path / "nowhere.txt"], tmp_path / "ray", model=model, fmt="csv")
    expected = single_process([bad, tmp_path / "nowhere.txt"], model, tmp_path / "local")
    assert counts == expected
    assert counts["articles"] == len(MALFORMED_LINES) + 1 and counts["errors"] == MALFORMED_ERRORS + 1
    for name in ("sentences", "articles"):
        local = (tmp_path / "local" / f"{name}.jsonl").read_text(encoding="utf-8")
        assert len((tmp_path / "ray" / f"{name}.csv").read_text(encoding="utf-8").splitlines()) == \
            len(local.splitlines()) + 1  # + the CSV header

    rows = [{"id": "good", "text": "Scanning every message is mass surveillance."}, {"id": "none", "text": None},
            {"id": "empty", "text": ""}, {"id": "", "text": " \n "}, {"id": "absent"}]
    sentences, articles = score_dataset(ray.data.from_items(rows), model=model)
    summaries = articles.take_all()
    assert [r["doc_id"] for r in summaries] == ["good", "none", "empty", "4", "absent"]
    assert [r["error"] is None for r in summaries] == [True, False, False, False, False]
    assert summaries[1]["error"] == "row 2: no text in field 'text'"
    assert {r["doc_id"] for r in sentences.take_all()} == {"good"}


def test_refuses_to_overwrite(tmp_path, model):
    from stance.scoring.distributed import score_files

    (tmp_path / "articles.jsonl").write_text("")
    with pytest.raises(FileExistsError):
        score_files([paths.seeds_dir()], tmp_path, model=model)


def test_cli_exit_codes(tmp_path, model):
    from typer.testing import CliRunner

    from stance.cli import app

    runner = CliRunner()
    good = write_jsonl(tmp_path / "good.jsonl", seed_records()[:2])
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(MALFORMED_LINES) + "\n", encoding="utf-8")
    ok = runner.invoke(app, ["score", str(good), "--out", str(tmp_path / "ok"), "--engine", "ray", "--model", model,
                             "--batch-size", "8"])
    assert ok.exit_code == 0, ok.output
    assert len(read_jsonl(tmp_path / "ok" / "articles.jsonl")) == 2
    partial = runner.invoke(app, ["score", str(bad), "--out", str(tmp_path / "bad"), "--engine", "ray",
                                  "--model", model])
    assert partial.exit_code == 1, partial.output
    assert f"{MALFORMED_ERRORS} errors" in partial.output
    again = runner.invoke(app, ["score", str(good), "--out", str(tmp_path / "ok"), "--engine", "ray", "--model", model])
    assert again.exit_code == 2 and "--force" in again.output  # a usage error, like the local engine


def test_every_input_kind_gives_equal_rows_in_both_engines(tmp_path, model):
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    from stance.scoring.distributed import score_files

    records = seed_records()[:3] + [{"id": "empty", "text": "\u200b"}, {"id": "s", "text": "Scanning \ud83d"}]
    folder = tmp_path / "folder"
    folder.mkdir()
    for r in records[:2]:
        (folder / f"{r['id']}.txt").write_text(r["text"], encoding="utf-8")
    (folder / "report.html").write_text("<p>not an article</p>", encoding="utf-8")
    jsonl = write_jsonl(tmp_path / "in.jsonl", records)
    table = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pylist([{"id": r["id"], "text": r["text"].replace("\ud83d", "")} for r in records]),
                   table)
    with (tmp_path / "in.csv").open("w", encoding="utf-8-sig", newline="") as handle:
        import csv

        writer = csv.DictWriter(handle, fieldnames=["id", "text"])
        writer.writeheader()
        writer.writerows({"id": r["id"], "text": r["text"].replace("\ud83d", "")} for r in records)
    inputs = [folder, jsonl, table, tmp_path / "in.csv", str(tmp_path / "fold*" / "*.txt"), "-", tmp_path / "absent.txt"]
    stdin = b"Encryption protects everyone.\r\nThe vote is on Tuesday."
    counts = score_files(inputs, tmp_path / "ray", model=model, actors=2, articles_per_batch=3,
                         stdin=io.BytesIO(stdin))
    expected = single_process(inputs, model, tmp_path / "local", stdin=io.BytesIO(stdin))
    assert counts == expected
    assert counts["articles"] == 2 + 5 + 5 + 5 + 2 + 1 + 1
    assert_same_outputs(tmp_path / "ray", tmp_path / "local")
    articles = read_jsonl(tmp_path / "ray" / "articles.jsonl")
    assert [a["error"] for a in articles if a["error"]] == ["row 4: empty: no visible text"] * 3 + \
        ["unreadable: No such file or directory"]


def test_the_model_travels_from_the_driver(tmp_path, model, monkeypatch):
    """A model that exists only in the driver's store (the workers started with another store)."""
    import shutil

    from stance.models.store import folder_sha256
    from stance.scoring.distributed import score_files

    store = tmp_path / "driver-store"
    shutil.copytree(model, store / "driver-only")
    monkeypatch.setenv("STANCE_HOME", str(store))  # after ray.init: the workers never see it
    seeds = write_jsonl(tmp_path / "seeds.jsonl", seed_records()[:2])
    counts = score_files([seeds], tmp_path / "ray", model="driver-only")
    assert counts["errors"] == 0 and counts["articles"] == 2
    rows = read_jsonl(tmp_path / "ray" / "articles.jsonl")
    assert {r["model"] for r in rows} == {"driver-only"}
    assert {r["model_sha256"] for r in rows} == {folder_sha256(store / "driver-only")}


def test_explanations_are_equal_in_both_engines(tmp_path, model):
    from stance.scoring.distributed import score_files

    seeds = write_jsonl(tmp_path / "seeds.jsonl", seed_records()[:2])
    counts = score_files([seeds], tmp_path / "ray", model=model, explain=3, fmt="parquet")
    expected = single_process([seeds], model, tmp_path / "local", explain=3, fmt="parquet")
    assert counts == expected
    import pyarrow.parquet as pq

    ray_rows = pq.read_table(tmp_path / "ray" / "sentences.parquet").to_pylist()
    assert ray_rows == pq.read_table(tmp_path / "local" / "sentences.parquet").to_pylist()
    assert sum(bool(row["explanation"]) for row in ray_rows) > len(ray_rows) / 4


def test_actors_share_one_unpacked_copy_per_model(tmp_path, model):
    """Every actor unpacks the payload; a run must not leave one copy per actor in the temp folder."""
    import os

    from stance.models.store import resolve
    from stance.scoring.distributed import model_payload, unpacked_model

    payload = model_payload(resolve(model))
    first = unpacked_model(payload, root=tmp_path)
    again = unpacked_model(payload, root=tmp_path)
    user = tmp_path / f"stance-models-{os.getuid()}"
    assert first == again == user / f"{payload['sha256']}-{payload['name']}" / payload["name"]
    assert sorted(p.name for p in user.iterdir() if not p.name.endswith(".lock")) == [first.parent.name]

    # a copy damaged after it was unpacked is replaced, not used; a killed actor's staging folder goes
    config = first / "config.json"
    config.write_bytes(b"damaged")
    (user / f".staging-{first.parent.name}-killed").mkdir()
    assert unpacked_model(payload, root=tmp_path) == first
    assert config.read_bytes() == payload["files"]["config.json"]
    assert sorted(p.name for p in user.iterdir() if not p.name.endswith(".lock")) == [first.parent.name]

    # the same weights under another name (the sha256 leaves out model cards) get their own folder,
    # and unpacking one never removes the other
    other = unpacked_model({**payload, "name": "renamed-copy"}, root=tmp_path)
    assert other.name == "renamed-copy" and other.parent != first.parent
    assert unpacked_model(payload, root=tmp_path) == first and first.is_dir() and other.is_dir()

    tampered = {**payload, "files": {**payload["files"], "config.json": b"other"}}
    with pytest.raises(ValueError, match="other bytes than the driver sent"):
        unpacked_model(tampered, root=tmp_path / "fresh")
    assert [p.name for p in (tmp_path / "fresh" / user.name).iterdir() if not p.name.endswith(".lock")] == []


def test_an_unsafe_shared_folder_falls_back_to_a_private_one(tmp_path, model):
    import os

    from stance.models.store import resolve
    from stance.scoring.distributed import model_payload, unpacked_model

    user = tmp_path / f"stance-models-{os.getuid()}"
    user.mkdir()
    user.chmod(0o777)  # open to other users: files there could be planted or changed
    folder = unpacked_model(model_payload(resolve(model)), root=tmp_path)
    assert user not in folder.parents and folder.is_dir()
    assert folder.parents[2] == tmp_path and folder.parents[1].name.startswith("stance-model-")
