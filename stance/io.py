"""Reading articles from files and folders, scoring them in a stream, writing rows.

Inputs: text files (one article each), folders of them (searched recursively), and JSONL or
CSV files with one article per row (``text_field``). A file that cannot be read or is not
UTF-8, or a row without usable text, becomes an error row naming it; every other input is
scored. Output: sentence rows and article rows, as JSONL or CSV, written as they are made,
so memory does not grow with the number of inputs.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from stance.aggregate import summarise
from stance.context import segment_with_context
from stance.labels import LABELS
from stance.text import has_visible_text

TEXT_SUFFIXES = {".txt", ".md", ".text"}
TABLE_SUFFIXES = {".jsonl", ".csv"}
SENTENCE_COLUMNS = ["source", "doc_id", "sentence_index", "start", "end", "text", "label",
                    *[f"p_{label}" for label in LABELS], "model", "error"]
ARTICLE_COLUMNS = ["source", "doc_id", "n_sentences", *[f"n_{label}" for label in LABELS],
                   *[f"share_{label}" for label in LABELS], *[f"mean_p_{label}" for label in LABELS],
                   "net_stance", "model", "error"]


@dataclass(frozen=True)
class Article:
    """One input article, or (``error`` set) one input that could not be read."""

    source: str
    doc_id: str
    text: str = ""
    error: str | None = None


def _expand(paths: Iterable[str | Path]) -> Iterator[Path]:
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file())
        else:
            yield path


def _table_rows(path: Path, text_field: str, id_field: str | None) -> Iterator[Article]:
    # utf-8-sig: a spreadsheet's "CSV UTF-8" starts with a byte-order mark that would otherwise
    # become part of the first column's name
    with path.open(encoding="utf-8-sig", newline="") as handle:
        if path.suffix == ".csv":
            records: Iterable[tuple[int, Any]] = enumerate(csv.DictReader(handle), start=1)
        else:
            records = ((n, line) for n, line in enumerate(handle, start=1) if line.strip())
        for number, record in records:
            doc_id = f"{path.name}:{number}"
            if isinstance(record, str):
                try:
                    record = json.loads(record)
                except json.JSONDecodeError as problem:
                    yield Article(str(path), doc_id, error=f"line {number}: invalid JSON ({problem.msg})")
                    continue
            if not isinstance(record, dict):
                yield Article(str(path), doc_id, error=f"row {number}: not an object")
                continue
            if id_field and record.get(id_field) not in (None, ""):
                doc_id = str(record[id_field])
            text = record.get(text_field)
            if not isinstance(text, str) or not has_visible_text(text):
                yield Article(str(path), doc_id, error=f"row {number}: no text in field {text_field!r}")
            else:
                yield Article(str(path), doc_id, text)


def read_articles(
    paths: Iterable[str | Path], text_field: str = "text", id_field: str | None = "id"
) -> Iterator[Article]:
    """Articles from files, folders, JSONL and CSV, in a stable order; errors as error articles."""
    for path in _expand(paths):
        suffix = path.suffix.lower()
        try:
            if suffix in TABLE_SUFFIXES:
                yield from _table_rows(path, text_field, id_field)
                continue
            # a leading byte-order mark is dropped; offsets count from the text after it
            text = path.read_bytes().decode("utf-8-sig")
            if "\x00" in text:
                raise UnicodeDecodeError("utf-8", b"", 0, 1, "binary file (NUL bytes)")
            if not has_visible_text(text):
                yield Article(str(path), path.name, error="empty file")
            else:
                yield Article(str(path), path.name, text)
        except UnicodeDecodeError as problem:
            yield Article(str(path), path.name, error=f"not UTF-8 text: {problem.reason}")
        except OSError as problem:
            yield Article(str(path), path.name, error=f"unreadable: {problem.strerror or problem}")


def _batches(articles: Iterable[Article], size: int) -> Iterator[list[Article]]:
    batch: list[Article] = []
    for article in articles:
        batch.append(article)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def score_stream(
    articles: Iterable[Article], model: Any, model_name: str, articles_per_batch: int = 64
) -> Iterator[tuple[list[dict[str, Any]], dict[str, Any]]]:
    """For every article, in input order: its sentence rows and its article row.

    Sentences of ``articles_per_batch`` articles are predicted in one call. An article that
    fails (bad input, or an exception while scoring) yields no sentence rows and an article
    row with ``error`` set.
    """
    for batch in _batches(articles, articles_per_batch):
        pieces = [segment_with_context(a.text) if a.error is None else ([], []) for a in batch]
        spans = [sentences for sentences, _ in pieces]
        texts = [s.text for sentences in spans for s in sentences]
        contexts = [c for _, mine in pieces for c in mine]
        try:
            proba = model.predict_proba(texts, contexts) if texts else np.zeros((0, len(LABELS)))
        except Exception as problem:  # one bad batch must not stop the job; report every article in it
            for article in batch:
                yield [], error_article_row(article, model_name, f"scoring failed: {problem}")
            continue
        offset = 0
        for article, sentences in zip(batch, spans):
            if article.error is not None:
                yield [], error_article_row(article, model_name, article.error)
                continue
            mine = proba[offset: offset + len(sentences)]
            offset += len(sentences)
            yield sentence_rows(article, sentences, mine, model_name), article_row(article, mine, model_name)


def sentence_rows(article: Article, sentences: list, proba: np.ndarray, model_name: str) -> list[dict[str, Any]]:
    """One row per sentence, keys in ``SENTENCE_COLUMNS`` order."""
    # built from whole-array argmax/tolist: per-element NumPy access cost as much as predicting
    labels = [LABELS[i] for i in proba.argmax(1).tolist()]
    return [
        dict(zip(SENTENCE_COLUMNS, (article.source, article.doc_id, i, s.start, s.end, s.text, label, *p,
                                    model_name, None)))
        for i, (s, label, p) in enumerate(zip(sentences, labels, proba.tolist()))
    ]


def article_row(article: Article, proba: np.ndarray, model_name: str) -> dict[str, Any]:
    return {"source": article.source, "doc_id": article.doc_id, **summarise(proba), "model": model_name,
            "error": None}


def error_article_row(article: Article, model_name: str, error: str) -> dict[str, Any]:
    row = {column: None for column in ARTICLE_COLUMNS}
    row.update({"source": article.source, "doc_id": article.doc_id, "n_sentences": 0, "model": model_name,
                "error": error})
    return row


def arrow_type(column: str) -> Any:
    """The Arrow type of an output column (counts and offsets int64, probabilities float64)."""
    import pyarrow as pa

    if column in {"sentence_index", "start", "end", "n_sentences"} or column in {f"n_{x}" for x in LABELS}:
        return pa.int64()
    if column.startswith(("p_", "share_", "mean_p_")) or column == "net_stance":
        return pa.float64()
    return pa.string()


FORMATS = ("jsonl", "csv", "parquet")
PARQUET_ROWS_PER_GROUP = 10_000  # rows buffered before a Parquet row group is written: memory stays flat


class RowWriter:
    """Writes rows with fixed columns to a JSONL, CSV or Parquet file, as they come."""

    def __init__(self, path: Path, columns: list[str], fmt: str) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        self.columns, self.fmt, self.path = columns, fmt, path
        self.buffer: list[dict[str, Any]] = []
        if fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            self.schema = pa.schema([(c, arrow_type(c)) for c in columns])
            self.parquet = pq.ParquetWriter(path, self.schema)
            return
        self.encode = json.JSONEncoder(ensure_ascii=False).encode  # one encoder, not one per row
        self.handle: TextIO = path.open("w", encoding="utf-8", newline="")
        if fmt == "csv":
            self.writer = csv.DictWriter(self.handle, fieldnames=columns, extrasaction="ignore")
            self.writer.writeheader()

    def write(self, row: dict[str, Any]) -> None:
        self.write_rows((row,))

    def write_rows(self, rows: Iterable[dict[str, Any]]) -> None:
        """Write many rows; JSONL and CSV in one call to the file."""
        projected = ({c: row.get(c) for c in self.columns} for row in rows)
        if self.fmt == "parquet":
            for row in projected:
                self.buffer.append(row)
                if len(self.buffer) >= PARQUET_ROWS_PER_GROUP:
                    self._flush()
        elif self.fmt == "csv":
            self.writer.writerows({c: ("" if v is None else v) for c, v in row.items()} for row in projected)
        else:
            self.handle.writelines(self.encode(row) + "\n" for row in projected)

    def write_table(self, table: Any) -> None:
        """Write every row of a ``pyarrow.Table`` holding (at least) this writer's columns.

        Parquet takes the table as it is (after any buffered rows); JSONL and CSV take its rows.
        """
        if self.fmt == "parquet":
            self._flush()
            self.parquet.write_table(table.select(self.columns))
        else:
            self.write_rows(table.to_pylist())

    def _flush(self) -> None:
        import pyarrow as pa

        if self.buffer:
            self.parquet.write_table(pa.Table.from_pylist(self.buffer, schema=self.schema))
            self.buffer = []

    def close(self) -> None:
        if self.fmt == "parquet":
            self._flush()
            self.parquet.close()
        else:
            self.handle.close()


def output_paths(out_dir: Path, fmt: str) -> tuple[Path, Path]:
    """Where ``stance score`` writes: ``<out>/sentences.<fmt>`` and ``<out>/articles.<fmt>``."""
    return out_dir / f"sentences.{fmt}", out_dir / f"articles.{fmt}"


def write_scores(
    articles: Iterable[Article],
    model: Any,
    model_name: str,
    out_dir: Path,
    fmt: str = "jsonl",
    force: bool = False,
    progress: Any = None,
) -> dict[str, int]:
    """Score ``articles`` into ``out_dir``; returns counts of articles, sentences and errors.

    Raises ``FileExistsError`` when an output file exists and ``force`` is false.
    """
    sentences_path, articles_path = output_paths(out_dir, fmt)
    for path in (sentences_path, articles_path):
        if path.exists() and not force:
            raise FileExistsError(f"{path} exists; pass --force to overwrite")
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = {"articles": 0, "sentences": 0, "errors": 0}
    sentence_writer = RowWriter(sentences_path, SENTENCE_COLUMNS, fmt)
    article_writer = RowWriter(articles_path, ARTICLE_COLUMNS, fmt)
    try:
        for rows, summary in score_stream(articles, model, model_name):
            sentence_writer.write_rows(rows)
            article_writer.write(summary)
            counts["articles"] += 1
            counts["sentences"] += len(rows)
            counts["errors"] += summary["error"] is not None
            if progress is not None:
                progress()
    finally:
        sentence_writer.close()
        article_writer.close()
    return counts
