import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

import stance
from stance import paths
from stance.api import Prediction, kernel, predict, score_article
from stance.cli import app
from stance.models import ModelNotFoundError
from stance.scoring.local import write_scores
from stance.scoring.readers import read_articles

runner = CliRunner()


def test_labels_are_fixed():
    assert stance.LABELS == ("pro-scanning", "pro-encryption", "neutral")


def test_single_and_list_predictions(tiny_baseline):
    one = predict("Encryption gives paedophiles a place to hide.", model=tiny_baseline)
    assert isinstance(one, Prediction) and one.label in stance.LABELS
    assert sum(one.scores.values()) == pytest.approx(1.0)
    assert one.to_dict()["label"] == one.label
    many = predict(iter(["Meta has been approached for comment.", "Encryption gives paedophiles a place to hide."]),
                   model=tiny_baseline)
    assert [p.label for p in many][1] == one.label
    assert many[1].scores == pytest.approx(one.scores)


def test_bad_input_raises_typed_errors_naming_the_position(tiny_baseline):
    with pytest.raises(TypeError, match="position 1"):
        predict(["fine", None], model=tiny_baseline)
    with pytest.raises(TypeError):
        predict(None, model=tiny_baseline)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty"):
        predict("   ", model=tiny_baseline)
    marked = predict(["fine", ""], model=tiny_baseline, errors="mark")
    assert marked[0].error is None and marked[1].error and marked[1].label is None


def test_unknown_model_is_a_clear_error():
    with pytest.raises(ModelNotFoundError, match="no-such-model"):
        predict("text", model="no-such-model")


def test_non_english_and_markup_still_get_a_prediction(tiny_baseline):
    for text in ["Die Verschlüsselung schützt alle Nutzer.", "<div><p>Scanning &amp; privacy</p></div>"]:
        assert predict(text, model=tiny_baseline).label in stance.LABELS


def test_score_article_summary(tiny_baseline):
    text = ("Encryption will give paedophiles a place to hide, the charity warned.\n"
            "Meta has been approached for comment.\nThe vote is on Tuesday.")
    result = score_article(text, model=tiny_baseline)
    assert len(result.sentences) == 3
    for s in result.sentences:
        assert text[s["start"]:s["end"]] == s["text"]
    summary = result.summary
    assert summary["n_sentences"] == 3
    assert sum(summary[f"n_{label}"] for label in stance.LABELS) == 3
    assert -1.0 <= summary["net_stance"] <= 1.0
    scanning, encryption = summary["n_pro-scanning"], summary["n_pro-encryption"]
    expected = 0.0 if scanning + encryption == 0 else (encryption - scanning) / (encryption + scanning)
    assert summary["net_stance"] == pytest.approx(expected)
    assert all(t["p"] >= 0 for t in summary["top_pro-scanning"])


def test_batch_scoring_keeps_going_past_a_bad_file(tiny_baseline, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a_good.txt").write_text("Encryption protects everyone.\nThe vote is on Tuesday.", encoding="utf-8")
    (folder / "b_binary.txt").write_bytes(b"\x89PNG\x00\xff\xfe binary")
    counts = write_scores(read_articles([folder]), kernel(tiny_baseline), tmp_path / "out")
    assert counts == {"articles": 2, "sentences": 2, "errors": 1}
    articles = [json.loads(line) for line in (tmp_path / "out" / "articles.jsonl").read_text().splitlines()]
    assert [a["doc_id"] for a in articles] == ["a_good.txt", "b_binary.txt"]
    assert articles[0]["error"] is None and "NUL bytes" in articles[1]["error"]


def test_jsonl_and_csv_inputs_with_bad_rows(tiny_baseline, tmp_path):
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text('{"id": "x1", "text": "Encryption protects everyone."}\nnot json\n{"id": "x3"}\n', "utf-8")
    csv_file = tmp_path / "in.csv"
    csv_file.write_text("id,body\nc1,Scanning is surveillance.\n", "utf-8")
    rows = list(read_articles([jsonl]))
    assert [r.doc_id for r in rows] == ["x1", "in.jsonl:2", "x3"]
    assert rows[0].error is None and "JSON" in rows[1].error and "no text" in rows[2].error
    assert [r.text for r in read_articles([csv_file], text_field="body")] == ["Scanning is surveillance."]


def test_cli_score_refuses_to_overwrite_and_reports_failures(tiny_baseline, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "good.txt").write_text("Encryption protects everyone.", encoding="utf-8")
    (folder / "bad.txt").write_bytes(b"\xff\xfe\x00\x00")
    out = tmp_path / "out"
    args = ["score", str(folder), "--out", str(out), "--model", str(tiny_baseline), "--format", "csv"]
    first = runner.invoke(app, args)
    assert first.exit_code == 1, first.output
    assert (out / "sentences.csv").read_text().count("\n") == 2  # header + one sentence
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "--force" in again.output
    assert runner.invoke(app, [*args, "--force"]).exit_code == 1


def test_parquet_output_holds_the_same_rows_as_jsonl(tiny_baseline, tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    from stance.scoring import writers

    monkeypatch.setattr(writers, "PARQUET_ROWS_PER_GROUP", 3)  # several row groups from the seeds
    for fmt in ("jsonl", "parquet"):
        result = runner.invoke(app, ["score", str(paths.seeds_dir()), "--out", str(tmp_path / fmt), "--model", str(tiny_baseline),
                                     "--format", fmt])
        assert result.exit_code == 0, result.output
    for name in ("sentences", "articles"):
        table = pq.read_table(tmp_path / "parquet" / f"{name}.parquet")
        lines = (tmp_path / "jsonl" / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
        assert table.to_pylist() == [json.loads(line) for line in lines]
    assert pq.ParquetFile(tmp_path / "parquet" / "sentences.parquet").metadata.num_row_groups > 1
    assert pq.read_schema(tmp_path / "parquet" / "sentences.parquet").field("start").type == "int64"


def test_cli_predict_from_arguments_and_stdin(tiny_baseline):
    result = runner.invoke(app, ["predict", "--model", str(tiny_baseline), "--json", "Encryption protects everyone."])
    assert result.exit_code == 0
    row = json.loads(result.output.splitlines()[0])
    assert row["label"] in stance.LABELS and math.isclose(sum(row["scores"].values()), 1.0)
    piped = runner.invoke(app, ["predict", "--model", str(tiny_baseline)], input="one line\n\nsecond line\n")
    assert piped.exit_code == 0 and len(piped.output.strip().splitlines()) == 2


COMMANDS = ["predict", "score", "report", "models", "corpus", "train", "evaluate", "build-data", "install-encoder"]
# these examples rebuild the data, train, run the grid or download weights: `make all` / `make setup` run them
HEAVY = {"train", "evaluate", "build-data", "install-encoder"}


def example(command: str) -> list[str]:
    import re
    import shlex

    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "400"})  # one example, one line
    assert result.exit_code == 0
    found = re.search(r"Example: (stance .+)", result.output)
    assert found, f"`stance {command} --help` shows no example"
    return shlex.split(found.group(1).strip().rstrip("│").strip())


def test_every_command_is_listed_here():
    registered = {c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands}
    assert registered == set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example_that_works_as_pasted(command, tmp_path, monkeypatch):
    argv = example(command)
    assert argv[:2] == ["stance", command]
    if command in HEAVY:
        return
    import shutil

    # run where a newcomer would paste it: a folder holding the checkout's seeds and the corpus demo's scores
    shutil.copytree(paths.seeds_dir(), tmp_path / "seeds")
    demo = Path("experiments") / "results" / "corpus_demo" / "scores"
    shutil.copytree(paths.project_root() / demo, tmp_path / demo)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, argv[1:])
    assert result.exit_code == 0, result.output


def test_import_is_light():
    import subprocess
    import sys

    code = "import sys, stance; print(any(m in sys.modules for m in ('torch', 'transformers', 'ray', 'sklearn')))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_scored_rows_agree_with_predict_and_offsets_in_every_format(tiny_baseline, tmp_path):
    import csv

    import pyarrow.parquet as pq

    from stance.scoring.kernel import SENTENCE_COLUMNS

    text = "Encryption protects everyone. The vote is on Tuesday.\nScanning will find the abusers, ministers say."
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_text(text, encoding="utf-8")
    expected = score_article(text, model=str(tiny_baseline)).sentences
    for fmt in ("jsonl", "csv", "parquet"):
        write_scores(read_articles([tmp_path / "in"]), kernel(tiny_baseline), tmp_path / fmt, fmt)
        path = tmp_path / fmt / f"sentences.{fmt}"
        if fmt == "jsonl":
            rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        elif fmt == "csv":
            rows = list(csv.DictReader(path.open(encoding="utf-8")))
        else:
            rows = pq.read_table(path).to_pylist()
        assert len(rows) == len(expected) == 3
        assert list(rows[0]) == SENTENCE_COLUMNS
        for row, want in zip(rows, expected):
            start, end = int(row["start"]), int(row["end"])
            assert text[start:end] == row["text"] == want["text"]
            assert row["label"] == want["label"]
            assert [float(row[f"p_{label}"]) for label in stance.LABELS] == pytest.approx(
                [want["scores"][label] for label in stance.LABELS], abs=1e-12)


INVISIBLE = ["\u200b", "\u2060", "\ufeff", "\u00ad", "\u200e\u200f", " \u200b\n\t", "\x1f"]


@pytest.mark.parametrize("text", INVISIBLE)
def test_invisible_only_text_is_empty(tiny_baseline, text):
    # issue 17 case 8: zero-width space, word joiner, BOM, soft hyphen, direction marks, a control
    with pytest.raises(ValueError, match="invisible"):
        predict(text, model=tiny_baseline)
    marked = predict(["Scanning is surveillance.", text], model=tiny_baseline, errors="mark")
    assert marked[0].label is not None and marked[1].label is None and "invisible" in marked[1].error


def test_invisible_only_inputs_are_empty_error_rows(tiny_baseline, tmp_path):
    (tmp_path / "a.txt").write_text("\u200b\u2060\n\ufeff\n", encoding="utf-8")
    (tmp_path / "b.jsonl").write_text('{"id": "j1", "text": "\\u200b\\u00ad"}\n{"id": "j2", "text": "Keep it."}\n', "utf-8")
    rows = list(read_articles([tmp_path / "a.txt", tmp_path / "b.jsonl"]))
    assert [(r.doc_id, r.error) for r in rows] == [("a.txt", "empty: no visible text"),
                                                   ("j1", "row 1: empty: no visible text"), ("j2", None)]


def test_excel_csv_with_byte_order_mark_and_crlf_scores_every_row(tiny_baseline, tmp_path):
    # issue 17 case 5: "CSV UTF-8" from a spreadsheet starts with a BOM and ends lines with CRLF
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffid,text\r\nr1,Scanning is surveillance.\r\nr2,Encryption shields everyone.\r\n".encode())
    rows = list(read_articles([path]))
    assert [(r.doc_id, r.text, r.error) for r in rows] == [("r1", "Scanning is surveillance.", None),
                                                          ("r2", "Encryption shields everyone.", None)]
    txt = tmp_path / "bom.txt"
    txt.write_bytes("\ufeffEncryption shields everyone.\nThe vote is on Tuesday.\n".encode())
    counts = write_scores(read_articles([txt]), kernel(tiny_baseline), tmp_path / "out")
    sentences = [json.loads(line) for line in (tmp_path / "out" / "sentences.jsonl").read_text().splitlines()]
    assert counts["errors"] == 0 and sentences[0]["text"] == "Encryption shields everyone."
    assert sentences[0]["start"] == 0


def test_cli_entry_point_reports_a_missing_model_without_traceback(tmp_path, monkeypatch, capsys):
    # a store without the asked model: one line naming the command that builds it, exit 2
    from stance.cli import main

    monkeypatch.setenv("STANCE_HOME", str(tmp_path))
    monkeypatch.setattr("sys.argv", ["stance", "predict", "--model", "transformer", "Scanning is surveillance."])
    with pytest.raises(SystemExit) as stopped:
        main()
    err = capsys.readouterr().err
    assert stopped.value.code == 2
    assert err.startswith("error: model 'transformer' is not in the model store") and "make all" in err
    assert "Traceback" not in err


def test_version_option():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"stance {stance.__version__}"
