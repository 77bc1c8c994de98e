"""The overlapped engine (stance.scoring.pipeline) and column-wise rows: same bytes as the serial
path, errors as rows, no hang and no leftover process on failures, bounded read-ahead."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

import stance
from stance import aggregate
from stance.api import kernel
from stance.labels import LABELS
from stance.scoring import local, pipeline, writers
from stance.scoring.kernel import Kernel
from stance.scoring.local import write_scores
from stance.scoring.readers import Article

GOOD2 = "Encryption protects everyone.\nThe vote is on Tuesday."
FORMATS = [("jsonl", False), ("csv", False), ("csv", True), ("parquet", False)]
ODD = ("=SUM(A1) looks like a formula. \"Quoted\", with commas; and a % sign %s.\r\nA line\u2028break, "
       "an emoji \U0001F600 and a \ufffd.\n• a list item\n+ plus first. - minus @at")


def mixed_articles(n: int = 40) -> list[Article]:
    """Articles of 1-12 sentences, odd text, and error articles of every kind, with metadata."""
    from stance.data.loaders import seed_rows

    pool = [r["text"] for r in seed_rows()]
    out = []
    for i in range(n):
        meta = {"date": f"2024-01-{i % 28 + 1:02d}", "outlet": None if i % 3 else 'Daily "%s" News'}
        if i % 11 == 5:
            out.append(Article("in.jsonl", f"in.jsonl:{i}", error=f"row {i}: not an object"))
        elif i % 13 == 7:
            out.append(Article("in.jsonl", f"in.jsonl:{i}", "...!?", meta=meta))  # no sentence: an error row
        elif i % 9 == 4:
            out.append(Article("in.jsonl", f"in.jsonl:{i}", ODD, warnings="1 lone surrogate(s) replaced", meta=meta))
        else:
            picked = [pool[(i * 7 + j) % len(pool)] for j in range(1 + i % 12)]
            out.append(Article("in.jsonl", f"in.jsonl:{i}", " ".join(picked[:3]) + "\n\n" + " ".join(picked[3:]),
                               meta=meta))
    return out


def scoring_kernel(tiny_baseline: Path, explain: int = 0) -> Kernel:
    loaded = stance.load(tiny_baseline)
    return Kernel(loaded, "tiny", "0" * 64, 7, keep_fields=["date", "outlet"], explain=explain)


def outputs(folder: Path, fmt: str) -> tuple[bytes, bytes]:
    return (folder / f"sentences.{fmt}").read_bytes(), (folder / f"articles.{fmt}").read_bytes()


# -- column-wise rows: the same bytes as one dict per sentence


@pytest.mark.parametrize("explain", [0, 2])
def test_sentence_columns_hold_the_dict_rows(tiny_baseline, explain):
    scoring = scoring_kernel(tiny_baseline, explain)
    scored = scoring.score(mixed_articles(30))
    rows = [row for s in scored for row in scoring.sentence_rows(s)]
    columns = scoring.sentence_columns_of(scored)
    assert list(columns) == scoring.sentence_columns
    assert [dict(zip(columns, values)) for values in zip(*columns.values())] == \
        [{c: row.get(c) for c in scoring.sentence_columns} for row in rows]
    # the article row from the scored article alone equals the one built from its sentence rows
    assert [scoring.article_row(s) for s in scored] == [scoring.article_row(s, scoring.sentence_rows(s)) for s in scored]


@pytest.mark.parametrize(("fmt", "excel"), FORMATS)
def test_write_columns_writes_the_bytes_of_write_rows(tiny_baseline, tmp_path, monkeypatch, fmt, excel):
    monkeypatch.setattr(writers, "PARQUET_ROWS_PER_GROUP", 17)  # row groups cut inside batches
    scoring = scoring_kernel(tiny_baseline)
    articles = mixed_articles(40)
    by_rows, by_columns = tmp_path / f"rows.{fmt}", tmp_path / f"columns.{fmt}"
    with writers.RowWriter(by_rows, scoring.sentence_columns, fmt, excel) as old, \
            writers.RowWriter(by_columns, scoring.sentence_columns, fmt, excel) as new:
        for start in range(0, len(articles), 6):
            scored = scoring.score(articles[start: start + 6])
            old.write_rows([row for s in scored for row in scoring.sentence_rows(s)])
            new.write_columns(scoring.sentence_columns_of(scored))
    assert by_rows.read_bytes() == by_columns.read_bytes()
    if fmt == "parquet":
        import pyarrow.parquet as pq

        groups = pq.ParquetFile(by_columns).metadata
        assert {groups.row_group(i).num_rows for i in range(groups.num_row_groups - 1)} == {17}


def test_json_columns_encode_every_value_as_the_row_encoder_does():
    encode = json.JSONEncoder(ensure_ascii=False).encode
    values = [0.1, 1e-300, 2.0, float("nan"), float("inf"), -float("inf"), 3, True, None, "é\"\n\u2028",
              [{"a": 1}], np.float64(0.25)]
    for column in ([v] * 3 for v in values):
        assert writers.json_column(column, encode) == [encode(v) for v in column]
    assert writers.json_column(values, encode) == [encode(v) for v in values]
    with pytest.raises(ValueError):
        writers.RowWriter(Path("/dev/null"), ["a", "b"], "jsonl").write_columns({"a": [1], "b": [1, 2]})


# -- the summaries: same numbers as the plain algorithm


def reference_summary_intervals(proba: np.ndarray) -> dict:
    """The bootstrap intervals computed the plain way: fresh draws, one percentile call each."""
    n = len(proba)
    labels = proba.argmax(1)
    enc, scan = (labels == aggregate.ENCRYPTION).astype(float), (labels == aggregate.SCANNING).astype(float)
    rows = np.random.default_rng(0).integers(0, n, size=(1000 if n >= 2 else 0, n))
    boot_enc, boot_scan = enc[rows].sum(axis=1), scan[rows].sum(axis=1)
    lean = proba[:, aggregate.ENCRYPTION] - proba[:, aggregate.SCANNING]
    sided = enc.sum() + scan.sum()
    return {"engagement": aggregate._interval((boot_enc + boot_scan) / n),
            "balance": aggregate._interval(aggregate._ratio(boot_enc - boot_scan, boot_enc + boot_scan))
            if sided else (None, None),
            "stance_index": aggregate._interval(lean[rows].mean(axis=1))}


@pytest.mark.parametrize("n", [1, 2, 3, 17, 48, 49, 130])
def test_summary_intervals_equal_the_plain_computation_exactly(n):
    rng = np.random.default_rng(n)
    for alpha in ([1, 1, 1], [0.1, 0.1, 5], [5, 0.3, 0.3]):
        proba = rng.dirichlet(alpha, size=n)
        summary, expected = aggregate.summarise(proba), reference_summary_intervals(proba)
        for name, (low, high) in expected.items():
            assert (summary[f"{name}_ci_low"], summary[f"{name}_ci_high"]) == (low, high), (n, name)
    with pytest.raises(ValueError):  # the cached resamples are read-only
        aggregate.resample_rows(5, 1000, 0)[0, 0] = 1


# -- the overlapped engine


@pytest.fixture
def eager_worker(monkeypatch):
    """Makes this process wait for the worker to start, so that the worker does its share even of
    the small inputs of these tests; returns the list of jobs sent to it (kind, job id)."""
    sent: list[tuple[str, int]] = []
    real_free, real_send = pipeline.Worker.free, pipeline.Worker.send

    def free(self):
        while not self.ready:
            self.receive(block=True)
        return real_free(self)

    def send(self, kind, job, *payload):
        sent.append((kind, job))
        real_send(self, kind, job, *payload)

    monkeypatch.setattr(pipeline.Worker, "free", free)
    monkeypatch.setattr(pipeline.Worker, "send", send)
    return sent


def run_both(tiny_baseline, tmp_path, articles, fmt="jsonl", excel=False, per_batch=3):
    scoring = scoring_kernel(tiny_baseline)
    results = {}
    for overlap in (False, True):
        errors: list[dict] = []
        counts = write_scores(iter(articles), scoring, tmp_path / str(overlap), fmt, excel=excel, on_error=errors.append,
                              articles_per_batch=per_batch, overlap=overlap)
        results[overlap] = (counts, errors, outputs(tmp_path / str(overlap), fmt))
    return results


@pytest.mark.parametrize(("fmt", "excel"), FORMATS)
def test_overlapped_and_serial_runs_write_the_same_bytes(tiny_baseline, tmp_path, eager_worker, fmt, excel):
    results = run_both(tiny_baseline, tmp_path, mixed_articles(60), fmt, excel)
    assert results[True] == results[False]
    assert {kind for kind, _ in eager_worker} == {"prepare", "finish"}  # the worker did both kinds of job
    counts, errors, _ = results[True]
    assert counts["articles"] == 60 and counts["errors"] == len(errors) >= 6
    assert {e["error"] for e in errors} >= {"row 5: not an object", "empty: no sentence"}


def test_a_bad_article_is_one_error_row_when_overlapped(tiny_baseline, tmp_path, eager_worker):
    articles = [Article("s", f"a{i}", "Encryption protects everyone. Scanning finds abuse.") for i in range(20)]
    articles[11] = Article("s", "bad", "\u200b\u200b")  # invisible: no sentence
    counts, errors, (_, article_bytes) = run_both(tiny_baseline, tmp_path, articles)[True]
    rows = [json.loads(line) for line in article_bytes.decode().splitlines()]
    assert counts == {"articles": 20, "sentences": 38, "errors": 1}
    assert [r["doc_id"] for r in rows if r["error"]] == ["bad"] and errors[0]["doc_id"] == "bad"


class Recorder:
    """Records every worker the pipeline starts (to check that each is gone afterwards)."""

    def __init__(self, monkeypatch):
        self.workers: list[pipeline.Worker] = []
        real = pipeline.Worker

        def make(*args, **kwargs):
            worker = real(*args, **kwargs)
            self.workers.append(worker)
            return worker

        monkeypatch.setattr(pipeline, "Worker", make)

    def all_gone(self) -> bool:
        return bool(self.workers) and all(w.process.poll() is not None for w in self.workers)


def failing_after(articles, count, error):
    for i, article in enumerate(articles):
        if i == count:
            raise error
        yield article


@pytest.mark.parametrize("error", [OSError("disk went away"), KeyboardInterrupt()])
def test_an_input_failure_mid_stream_ends_like_the_serial_run_and_leaves_no_worker(tiny_baseline, tmp_path,
                                                                                 monkeypatch, eager_worker, error):
    recorder = Recorder(monkeypatch)
    threads = threading.active_count()
    scoring = scoring_kernel(tiny_baseline)
    for overlap in (False, True):
        with pytest.raises(type(error)):
            write_scores(failing_after(mixed_articles(40), 25, error), scoring, tmp_path / str(overlap),
                         articles_per_batch=4, overlap=overlap)
    assert recorder.all_gone() and threading.active_count() == threads
    if isinstance(error, OSError):  # the rows read before the failure are written, as serially
        assert outputs(tmp_path / "True", "jsonl") == outputs(tmp_path / "False", "jsonl")
        assert len(outputs(tmp_path / "True", "jsonl")[1].splitlines()) == 24


def test_an_unreadable_input_mid_stream_is_an_error_row_and_exit_1(tiny_baseline, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from stance.cli import app

    monkeypatch.setattr(local, "PIPELINE_MIN_CHARACTERS", 100)  # the default rule takes the worker...
    monkeypatch.setattr(local, "idle_cpus", lambda: 2.0)  # ...whatever the machine's load
    recorder = Recorder(monkeypatch)
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    texts = [a.text for a in mixed_articles(30) if a.error is None and a.text != "...!?"]
    for path in (one, two):
        path.write_text("".join(json.dumps({"text": text}) + "\n" for text in texts), encoding="utf-8")
    result = CliRunner().invoke(app, ["score", str(one), str(tmp_path / "missing.txt"), str(two), "--out",
                                      str(tmp_path / "out"), "--model", str(tiny_baseline)])
    assert result.exit_code == 1, result.output
    assert "missing.txt" in result.output and recorder.all_gone()
    rows = [json.loads(line) for line in (tmp_path / "out" / "articles.jsonl").read_text().splitlines()]
    assert [r["doc_id"] for r in rows if r["error"]] == ["missing.txt"] and len(rows) == 2 * len(texts) + 1


def test_a_worker_that_dies_costs_nothing_but_time(tiny_baseline, tmp_path, monkeypatch, eager_worker):
    real_send = pipeline.Worker.send
    killed = []

    def send_then_die(self, kind, job, *payload):
        real_send(self, kind, job, *payload)
        if job == 3:
            self.process.kill()
            killed.append(job)

    monkeypatch.setattr(pipeline.Worker, "send", send_then_die)
    recorder = Recorder(monkeypatch)
    results = run_both(tiny_baseline, tmp_path, mixed_articles(60))
    assert killed and results[True] == results[False] and recorder.all_gone()


def test_reading_ahead_is_bounded(tiny_baseline, tmp_path, eager_worker):
    read = written = 0
    gaps = []

    def source():
        nonlocal read
        for article in mixed_articles(120):
            read += 1
            yield article

    def progress(n):
        nonlocal written
        written += n
        gaps.append(read - written)

    write_scores(source(), scoring_kernel(tiny_baseline), tmp_path / "out", progress=progress, articles_per_batch=4,
                 overlap=True)
    assert written == 120 and max(gaps) <= (pipeline.WINDOW + 1) * 4 and eager_worker


def test_small_inputs_and_explanations_start_no_worker(tiny_baseline, tmp_path, monkeypatch):
    def no_worker(*args, **kwargs):
        raise AssertionError("a worker was started")

    monkeypatch.setattr(pipeline, "Worker", no_worker)
    monkeypatch.setattr(local, "idle_cpus", lambda: 2.0)
    write_scores(mixed_articles(20), scoring_kernel(tiny_baseline), tmp_path / "small")
    write_scores(mixed_articles(20), scoring_kernel(tiny_baseline, explain=2), tmp_path / "explain", overlap=True)
    monkeypatch.setattr(local, "PIPELINE_MIN_CHARACTERS", 100)
    monkeypatch.setattr(local, "idle_cpus", lambda: 0.0)  # a busy machine: serial
    write_scores(mixed_articles(20), scoring_kernel(tiny_baseline), tmp_path / "busy")
    with pytest.raises(ValueError, match="explain"):
        pipeline.score_overlapped([], scoring_kernel(tiny_baseline, explain=1), None, 4, print)


def test_score_article_and_the_overlapped_engine_agree(tiny_baseline, tmp_path, eager_worker):
    article = mixed_articles(12)[10]
    scored = stance.score_article(article.text, model=tiny_baseline)
    write_scores([article] * 8, kernel(tiny_baseline), tmp_path / "out", articles_per_batch=2, overlap=True)
    rows = [json.loads(line) for line in (tmp_path / "out" / "sentences.jsonl").read_text().splitlines()]
    assert [(s["start"], s["end"], s["label"], *(s["scores"][x] for x in LABELS)) for s in scored.sentences] == \
        [(r["start"], r["end"], r["label"], *(r[f"p_{x}"] for x in LABELS)) for r in rows[: len(scored.sentences)]]


def test_summaries_of_a_batch_equal_each_summary():
    rng = np.random.default_rng(3)
    probas = [rng.dirichlet([0.5, 0.5, 2], size=n) if n else np.zeros((0, 3)) for n in (0, 1, 2, 5, 40, 70, 3)]
    assert aggregate.summarise_many(probas) == [aggregate.summarise(p) for p in probas]


def test_a_summary_failure_is_that_articles_error_row(tiny_baseline, monkeypatch):
    from stance.scoring import kernel as kernel_module

    def failing_many(probas):
        raise FloatingPointError("batch")

    def failing_one(proba):
        if len(proba) == 3:
            raise FloatingPointError("three sentences")
        return aggregate.summarise(proba)

    monkeypatch.setattr(kernel_module, "summarise_many", failing_many)
    monkeypatch.setattr(kernel_module, "summarise", failing_one)
    scoring = scoring_kernel(tiny_baseline)
    articles = [Article("s", "three", "One is here. Two is here. Three is here."), Article("s", "two", GOOD2)]
    scored = scoring.score(articles)
    assert scored[0].error == "summary failed: FloatingPointError: three sentences" and not scored[0].sentences
    assert scored[1].error is None and scored[1].summary == aggregate.summarise(scored[1].proba)


@pytest.mark.parametrize("window", [1, 2])
def test_every_batch_is_written_whatever_the_window(tiny_baseline, tmp_path, monkeypatch, eager_worker, window):
    # a window emptied by finished batches is not the end of the input
    monkeypatch.setattr(pipeline, "WINDOW", window)
    results = run_both(tiny_baseline, tmp_path, mixed_articles(30), per_batch=2)
    assert results[True] == results[False] and results[True][0]["articles"] == 30
    assert ("finish", 1) in eager_worker or ("finish", 0) in eager_worker
