"""The one scoring path: reader, kernel and writers on the inputs real archives hold (issues 16 and 17)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import stance
from stance.api import ArticleError, kernel, score_article
from stance.cli import app
from stance.labels import LABELS
from stance.scoring.kernel import ARTICLE_COLUMNS, SENTENCE_COLUMNS, Kernel
from stance.scoring.local import score_files, write_scores
from stance.scoring.readers import Article, read_articles

runner = CliRunner()
GOOD = "Encryption protects everyone.\nThe vote is on Tuesday."


def read_rows(path: Path) -> list[dict]:
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    if path.suffix == ".csv":
        with path.open(encoding="utf-8-sig", newline="") as handle:
            return list(csv.DictReader(handle))
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()


def run(inputs: list, out: Path, model: Path, fmt: str = "jsonl", **options) -> tuple[dict, list[dict], list[dict]]:
    counts = score_files(inputs, out, model=model, fmt=fmt, force=True, **options)
    return counts, read_rows(out / f"sentences.{fmt}"), read_rows(out / f"articles.{fmt}")


class PoisonModel:
    """Fails whenever a batch holds a sentence with ``POISON`` in it (a model failing on one input)."""

    def __init__(self, inner) -> None:
        self.inner, self.calls = inner, 0

    def predict_proba(self, texts, contexts=None):
        self.calls += 1
        if any("POISON" in t for t in texts):
            raise TypeError("cannot tokenise this text")
        return self.inner.predict_proba(texts, contexts)


# -- issue 17 cases -----------------------------------------------------------------------------


def test_control_separator_before_a_numbered_item_costs_no_neighbour(tiny_baseline, tmp_path):
    # case 1: an ASCII separator right before "1." made pysbd raise and the whole run end
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.txt").write_text(GOOD, encoding="utf-8")
    (folder / "b.txt").write_text("Clause\x1f1. The provider shall scan every message.", encoding="utf-8")
    (folder / "b2.txt").write_text("Clause\x1c2. The provider shall scan.\x1dSection\x1e3. Done.", encoding="utf-8")
    (folder / "c.txt").write_text("Scanning is surveillance.", encoding="utf-8")
    counts, _, articles = run([folder], tmp_path / "out", tiny_baseline)
    assert [(a["doc_id"], a["error"]) for a in articles] == [("a.txt", None), ("b.txt", None), ("b2.txt", None),
                                                             ("c.txt", None)]
    assert articles[1]["error"] is None and articles[1]["n_sentences"] == 2
    assert counts["articles"] == 4 and counts["errors"] == 0


def test_a_day_of_debate_in_one_csv_cell_is_scored(tiny_baseline, tmp_path):
    # case 2: a 144 KB cell of 2,000 lines is over Python's csv field limit (131,072)
    day = "\n".join(f"Member {i} said encryption protects everyone in the chamber today." for i in range(2000))
    assert len(day) > 131_072
    path = tmp_path / "debate.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerows([["id", "text"], ["before", "Scanning is surveillance."], ["day", day],
                          ["after", "The vote is on Tuesday."]])
    counts, sentences, articles = run([path], tmp_path / "out", tiny_baseline)
    assert [(a["doc_id"], a["error"]) for a in articles] == [("before", None), ("day", None), ("after", None)]
    assert articles[1]["n_sentences"] == 2000
    assert counts["sentences"] == 2002


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_a_lone_surrogate_is_replaced_and_every_writer_finishes(tiny_baseline, tmp_path, fmt):
    # case 3: a truncated emoji from scraped JSON crashed the writers mid-run
    path = tmp_path / "scraped.jsonl"
    path.write_text('{"id": "s1", "text": "Scanning is surveillance \\ud83d"}\n{"id": "s2", "text": "Keep it."}\n'
                    '{"id": "s3\\udc00", "text": "Encryption protects everyone."}\n', encoding="utf-8")
    counts, sentences, articles = run([path], tmp_path / fmt, tiny_baseline, fmt=fmt)
    assert counts == {"articles": 3, "sentences": 3, "errors": 0}
    assert sentences[0]["text"] == "Scanning is surveillance \ufffd"
    assert articles[0]["warnings"] == "1 lone surrogate(s) replaced with U+FFFD"
    assert articles[2]["doc_id"] == "s3\ufffd"
    assert articles[1]["warnings"] in (None, "")


def test_one_failing_text_fails_only_its_article(tiny_baseline):
    # case 4: a prediction failure was reported for every article of the batch
    poison = PoisonModel(stance.load(tiny_baseline))
    scoring = Kernel(poison, "poison", "0" * 64)
    articles = [Article("s", f"a{i}", "Encryption protects everyone. Scanning is needed.") for i in range(5)]
    articles[2] = Article("s", "a2", "Scanning is needed. POISON here.")
    rows = scoring.rows(articles)
    errors = [article["error"] for _, article in rows]
    assert errors == [None, None, "prediction failed: TypeError: cannot tokenise this text", None, None]
    assert [len(sentences) for sentences, _ in rows] == [2, 2, 0, 2, 2]
    good = Kernel(stance.load(tiny_baseline), "poison", "0" * 64).rows([articles[0]])[0][0]
    assert [r["p_neutral"] for r in rows[0][0]] == [r["p_neutral"] for r in good]


def test_predict_marks_only_the_failing_item(tiny_baseline, monkeypatch):
    # case 4: errors="mark" raised an opaque TypeError instead of marking the one item
    from stance import api

    poison = PoisonModel(stance.load(tiny_baseline))
    ref = api.store.resolve(tiny_baseline)
    monkeypatch.setattr(api, "_loaded", lambda model=None, quantize=False: (poison, ref))
    marked = api.predict(["Scanning is needed.", "POISON", "Encryption protects everyone."], errors="mark")
    assert [m.label is None for m in marked] == [False, True, False]
    assert marked[1].error == "prediction failed: TypeError: cannot tokenise this text"
    with pytest.raises(ValueError, match="position 1 could not be scored"):
        api.predict(["Scanning is needed.", "POISON"])


def test_lone_cr_line_endings_give_the_same_sentences_in_score_and_report(tiny_baseline, tmp_path):
    # case 7: lone CR glued headline, byline and first sentence in `score`, not in `report`
    lines = ["Ministers revive the scanning plan", "By Anna Reporter", "Encryption protects everyone.",
             "The vote is on Tuesday."]
    texts = {}
    for name, newline in (("cr", "\r"), ("crlf", "\r\n"), ("lf", "\n")):
        path = tmp_path / "in" / f"{name}.txt"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(newline.join(lines).encode())
        texts[name] = path
    _, sentences, _ = run([tmp_path / "in"], tmp_path / "out", tiny_baseline)
    by_doc: dict[str, list[str]] = {}
    for row in sentences:
        by_doc.setdefault(row["doc_id"], []).append(row["text"])
    assert by_doc == {"cr.txt": lines, "crlf.txt": lines, "lf.txt": lines}
    for name, path in texts.items():
        out = tmp_path / f"{name}.html"
        result = runner.invoke(app, ["report", str(path), "--out", str(out), "--model", str(tiny_baseline)])
        assert result.exit_code == 0, result.output
        assert out.read_text(encoding="utf-8").count('<span class="sentence') == 4


def test_invisible_only_file_is_one_empty_error_row(tiny_baseline, tmp_path):
    # case 8, in scoring: no sentence, one "empty" row
    path = tmp_path / "blank.txt"
    path.write_text("\u200b\n\u2060\ufeff\n\u00ad", encoding="utf-8")
    counts, sentences, articles = run([path], tmp_path / "out", tiny_baseline)
    assert counts == {"articles": 1, "sentences": 0, "errors": 1}
    assert articles[0]["error"] == "empty: no visible text"


@pytest.mark.parametrize("stdin_format,payload,expected", [
    ("text", b"Encryption protects everyone.\nThe vote is on Tuesday.\n", [("<stdin>", 2)]),
    ("jsonl", b'{"id": "j1", "text": "Scanning is surveillance."}\n{"id": "j2", "text": "Keep it."}\n',
     [("j1", 1), ("j2", 1)]),
    ("csv", b"id,text\nc1,Scanning is surveillance.\n", [("c1", 1)]),
])
def test_score_reads_standard_input(tiny_baseline, tmp_path, stdin_format, payload, expected):
    # case 10: `stance score -` wrote an "unreadable file" row and ignored standard input
    out = tmp_path / "out"
    result = runner.invoke(app, ["score", "-", "--out", str(out), "--model", str(tiny_baseline),
                                 "--stdin-format", stdin_format], input=payload)
    assert result.exit_code == 0, result.output
    articles = read_rows(out / "articles.jsonl")
    assert [(a["doc_id"], a["n_sentences"]) for a in articles] == expected
    assert all(a["source"] == "<stdin>" for a in articles)


def test_undecodable_bytes_cost_one_row_and_are_reported(tiny_baseline, tmp_path):
    jsonl = tmp_path / "mixed.jsonl"
    jsonl.write_bytes(b'{"id": "ok", "text": "Encryption protects everyone."}\n'
                      b'{"id": "latin", "text": "Caf\xe9 owners back scanning."}\n{"broken\n'
                      b'{"id": "after", "text": "Keep it."}\n')
    _, _, articles = run([jsonl], tmp_path / "out", tiny_baseline)
    assert [a["doc_id"] for a in articles] == ["ok", "latin", "mixed.jsonl:3", "after"]
    assert articles[1]["error"] is None
    assert articles[1]["warnings"] == "1 undecodable byte sequence(s) replaced with U+FFFD"
    assert articles[2]["error"].startswith("line 3: invalid JSON")
    assert articles[3]["error"] is None


# -- issue 16: one reader for every input kind ----------------------------------------------------


def test_parquet_input_gives_the_rows_of_the_same_jsonl(tiny_baseline, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    records = [{"id": "p1", "text": GOOD}, {"id": "p2", "text": ""}, {"id": "p3", "text": "Scanning is surveillance."}]
    pq.write_table(pa.Table.from_pylist(records), tmp_path / "in.parquet")
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    _, from_parquet, parquet_articles = run([tmp_path / "in.parquet"], tmp_path / "a", tiny_baseline)
    _, from_jsonl, jsonl_articles = run([tmp_path / "in.jsonl"], tmp_path / "b", tiny_baseline)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "source"} for r in rows]  # noqa: E731
    assert strip(from_parquet) == strip(from_jsonl) and len(from_parquet) == 3
    assert strip(parquet_articles) == strip(jsonl_articles)
    assert parquet_articles[1]["error"] == "row 2: empty: no visible text"


def test_globs_quoted_or_expanded_and_folders_read_only_articles(tiny_baseline, tmp_path):
    folder = tmp_path / "archive"
    (folder / "2024").mkdir(parents=True)
    (folder / "2025").mkdir()
    (folder / "2024" / "article.txt").write_text(GOOD, encoding="utf-8")
    (folder / "2025" / "article.txt").write_text("Scanning is surveillance.", encoding="utf-8")
    (folder / "2025" / "article.html").write_text("<p>a report written beside it</p>", encoding="utf-8")
    (folder / ".DS_Store").write_bytes(b"\x00\x01binary")
    (folder / "notes.tsv").write_text("a\tb\n", encoding="utf-8")
    _, _, articles = run([folder], tmp_path / "folder", tiny_baseline)
    assert [(a["doc_id"], a["error"]) for a in articles] == [("2024/article.txt", None), ("2025/article.txt", None)]
    _, _, globbed = run([str(folder / "**" / "*.txt")], tmp_path / "glob", tiny_baseline)
    assert [a["source"] for a in globbed] == [str(folder / "2024" / "article.txt"), str(folder / "2025" / "article.txt")]
    _, _, missing = run([str(tmp_path / "nothing-*.txt")], tmp_path / "missing", tiny_baseline)
    assert len(missing) == 1 and missing[0]["error"].startswith("unreadable")


def test_rows_name_the_model_and_its_sha256(tiny_baseline, tmp_path):
    from stance.models.store import folder_sha256

    (tmp_path / "a.txt").write_text(GOOD, encoding="utf-8")
    _, sentences, articles = run([tmp_path / "a.txt"], tmp_path / "out", tiny_baseline)
    digest = folder_sha256(Path(tiny_baseline))
    assert {r["model_sha256"] for r in sentences + articles} == {digest}
    assert {r["model"] for r in sentences + articles} == {Path(tiny_baseline).name}
    assert list(sentences[0]) == SENTENCE_COLUMNS and list(articles[0]) == ARTICLE_COLUMNS


def test_a_failure_inside_the_kernel_gives_the_same_error_on_every_path(tiny_baseline, tmp_path, monkeypatch):
    from stance.scoring import kernel as kernel_module

    real = kernel_module.segment_with_context

    def failing(text):
        if "INJECTED" in text:
            raise RuntimeError("injected failure")
        return real(text)

    monkeypatch.setattr(kernel_module, "segment_with_context", failing)
    bad = "Encryption protects everyone. INJECTED."
    with pytest.raises(ArticleError) as raised:
        score_article(bad, model=tiny_baseline)
    (tmp_path / "a.txt").write_text(GOOD, encoding="utf-8")
    (tmp_path / "b.txt").write_text(bad, encoding="utf-8")
    _, _, articles = run([tmp_path / "a.txt", tmp_path / "b.txt"], tmp_path / "out", tiny_baseline)
    assert articles[1]["error"] == str(raised.value) == "segmentation failed: RuntimeError: injected failure"
    assert articles[0]["error"] is None


def test_score_article_and_the_local_engine_give_equal_rows(tiny_baseline, tmp_path):
    text = "Ministers revive the scanning plan\r\nEncryption matters because:\n• survivors can reach a helpline unseen"
    (tmp_path / "a.txt").write_text(text, encoding="utf-8", newline="")
    _, sentences, _ = run([tmp_path / "a.txt"], tmp_path / "out", tiny_baseline)
    scored = score_article(text, model=tiny_baseline).sentences
    assert [(s["start"], s["end"], s["text"], s["label"]) for s in scored] == \
        [(r["start"], r["end"], r["text"], r["label"]) for r in sentences]
    assert [s["scores"][label] for s in scored for label in LABELS] == \
        [r[f"p_{label}"] for r in sentences for label in LABELS]


def test_csv_output_with_a_byte_order_mark_for_spreadsheets(tiny_baseline, tmp_path):
    (tmp_path / "a.txt").write_text("“Encryption” protects everyone.", encoding="utf-8")
    result = runner.invoke(app, ["score", str(tmp_path / "a.txt"), "--out", str(tmp_path / "out"), "--format", "csv",
                                 "--excel", "--model", str(tiny_baseline)])
    assert result.exit_code == 0, result.output
    raw = (tmp_path / "out" / "sentences.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbfsource,") and "“Encryption”".encode() in raw


def test_cli_usage_errors_are_one_line_not_tracebacks(tiny_baseline, tmp_path, monkeypatch, capsys):
    from stance.cli import main

    (tmp_path / "a.txt").write_text(GOOD, encoding="utf-8")
    for argv in (["stance", "score", str(tmp_path / "a.txt"), "--out", str(tmp_path / "o"), "--model", "no-such-model"],
                 ["stance", "report", str(tmp_path / "a.txt"), "--model", "no-such-model"]):
        monkeypatch.setattr("sys.argv", argv)
        with pytest.raises(SystemExit) as stopped:
            main()
        err = capsys.readouterr().err
        assert stopped.value.code == 2 and err.startswith("error: model 'no-such-model'") and "Traceback" not in err
        assert "(available: baseline, transformer)" in err
    deep = tmp_path / "new" / "folder" / "report.html"
    result = runner.invoke(app, ["report", str(tmp_path / "a.txt"), "--out", str(deep), "--model", str(tiny_baseline)])
    assert result.exit_code == 0 and deep.exists()


def test_kernel_rows_for_an_error_article_have_counts_zero_and_no_sentences(tiny_baseline):
    scoring = kernel(tiny_baseline)
    rows = scoring.rows([Article("x", "bad", error="unreadable: no such file"), Article("x", "ok", GOOD)])
    (bad_sentences, bad), (good_sentences, good) = rows
    assert bad_sentences == [] and bad["n_sentences"] == 0 and bad["error"] == "unreadable: no such file"
    assert [bad[f"n_{label}"] for label in LABELS] == [0, 0, 0] and bad["stance_index"] is None
    assert len(good_sentences) == 2 and good["n_sentences"] == 2 and good["error"] is None
    assert np.isclose(sum(good[f"share_{label}"] for label in LABELS), 1.0)


def test_write_scores_counts_and_progress(tiny_baseline, tmp_path):
    seen: list[int] = []
    articles = [Article("s", f"a{i}", GOOD) for i in range(5)]
    counts = write_scores(articles, kernel(tiny_baseline), tmp_path / "out", progress=seen.append,
                          articles_per_batch=2)
    assert counts == {"articles": 5, "sentences": 10, "errors": 0} and seen == [1] * 5
    with pytest.raises(FileExistsError):
        write_scores(articles, kernel(tiny_baseline), tmp_path / "out")
    assert list(read_articles([tmp_path / "out" / "articles.jsonl"], text_field="doc_id"))[0].text == "a0"


def test_a_folder_with_a_report_a_hidden_file_a_tsv_and_earlier_scores_scores_only_its_articles(tiny_baseline,
                                                                                                 tmp_path):
    folder = tmp_path / "desk"
    folder.mkdir()
    (folder / "one.txt").write_text(GOOD, encoding="utf-8")
    (folder / "two.md").write_text("Scanning is surveillance.", encoding="utf-8")
    first = runner.invoke(app, ["report", str(folder / "one.txt"), "--model", str(tiny_baseline)])
    assert first.exit_code == 0 and (folder / "one.html").exists()
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (folder / "notes.tsv").write_text("who\twhat\n", encoding="utf-8")
    earlier = runner.invoke(app, ["score", str(folder), "--out", str(folder / "scores"), "--model", str(tiny_baseline)])
    assert earlier.exit_code == 0, earlier.output
    again = runner.invoke(app, ["score", str(folder), "--out", str(tmp_path / "out"), "--model", str(tiny_baseline)])
    assert again.exit_code == 0, again.output
    assert [a["doc_id"] for a in read_rows(tmp_path / "out" / "articles.jsonl")] == ["one.txt", "two.md"]
    only_md = runner.invoke(app, ["score", str(folder), "--glob", "*.md", "--out", str(tmp_path / "md"),
                                  "--model", str(tiny_baseline)])
    assert only_md.exit_code == 0 and [a["doc_id"] for a in read_rows(tmp_path / "md" / "articles.jsonl")] == ["two.md"]


def test_the_first_error_reasons_are_printed_at_the_end(tiny_baseline, tmp_path):
    lines = [json.dumps({"id": f"bad{i}"}) for i in range(7)] + [json.dumps({"id": "ok", "text": GOOD})]
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = runner.invoke(app, ["score", str(tmp_path / "in.jsonl"), "--out", str(tmp_path / "out"),
                                 "--model", str(tiny_baseline)])
    assert result.exit_code == 1
    assert "8 articles, 2 sentences, 7 errors" in result.output
    assert f"{tmp_path / 'in.jsonl'} [bad0]: row 1: no text in field 'text'" in result.output
    assert "bad4" in result.output and "bad5" not in result.output and "... and 2 more" in result.output


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_explanations_reach_the_sentence_rows(tiny_baseline, tmp_path, fmt):
    text = "End-to-end encryption must be protected from scanning.\nThe vote is on Tuesday."
    (tmp_path / "a.txt").write_text(text, encoding="utf-8")
    _, sentences, _ = run([tmp_path / "a.txt"], tmp_path / "out", tiny_baseline, fmt=fmt, explain=2)
    assert list(sentences[0])[-1] == "explanation"
    lengths = []
    for row in sentences:
        found = json.loads(row["explanation"]) if fmt == "csv" else row["explanation"]
        lengths.append(len(found))  # only words that push towards the label: a neutral line may have none
        assert all(row["text"][a["start"]: a["end"]] == a["span"] and a["weight"] > 0 for a in found)
    assert lengths[0] == 2 and max(lengths) <= 2
    plain = score_article(text, model=tiny_baseline, explain=2)
    assert [a["span"] for a in plain.sentences[0]["explanation"]] == \
        [a["span"] for a in (json.loads(sentences[0]["explanation"]) if fmt == "csv" else sentences[0]["explanation"])]


def test_cli_predict_explains(tiny_baseline):
    sentence = "End-to-end encryption must be protected from scanning."
    result = runner.invoke(app, ["predict", "--model", str(tiny_baseline), "--explain", "2", "--json", sentence])
    assert result.exit_code == 0, result.output
    row = json.loads(result.output)
    assert len(row["explanation"]) == 2 and all(a["span"] in sentence and a["weight"] > 0 for a in row["explanation"])


def test_keep_fields_refuses_the_text_field_and_report_exits_1_on_a_bad_input(tiny_baseline, tmp_path):
    (tmp_path / "in.jsonl").write_text(json.dumps({"id": "a", "text": GOOD}) + "\n", encoding="utf-8")
    refused = runner.invoke(app, ["score", str(tmp_path / "in.jsonl"), "--out", str(tmp_path / "out"),
                                  "--keep-fields", "outlet,text", "--model", str(tiny_baseline)])
    assert refused.exit_code == 2 and "cannot keep the text field 'text'" in refused.output
    (tmp_path / "empty.txt").write_text("\u200b\n", encoding="utf-8")
    report = runner.invoke(app, ["report", str(tmp_path / "empty.txt"), "--model", str(tiny_baseline)])
    assert report.exit_code == 1 and "empty: no visible text" in report.output
