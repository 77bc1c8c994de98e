"""One writer family for scored rows: JSONL, CSV and Parquet, written as rows come.

Used by the local and the Ray engine alike. Memory stays flat: JSONL and CSV rows go straight
to the file; Parquet rows are buffered into row groups of :data:`PARQUET_ROWS_PER_GROUP`.
Text is written as UTF-8; ``excel=True`` makes a CSV for spreadsheets: a byte-order mark first, so
that spreadsheet programs on Windows read it as UTF-8, and text cells that begin like a formula
neutralised (:func:`csv_cell`). Lists (the top sentences) are JSON text in a CSV cell, JSON lists in
JSONL and nested lists in Parquet. A lone surrogate that reached a writer (the
readers replace them) is written as ``?`` rather than ending the run.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Iterable
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any, TextIO

from stance.labels import LABELS

FORMATS = ("jsonl", "csv", "parquet")
PARQUET_ROWS_PER_GROUP = 10_000
_INT_COLUMNS = frozenset({"sentence_index", "start", "end", "n_sentences", *[f"n_{x}" for x in LABELS]})
_FLOAT_PREFIXES = ("p_", "share_", "mean_p_", "engagement", "balance", "stance_index")
LIST_COLUMNS = frozenset({"top_pro-encryption", "top_pro-scanning"})
# OWASP's CSV-injection advice: a cell starting with one of these is a formula to a spreadsheet
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _json_float(value: float) -> str:
    # what json's encoder writes for a float (allow_nan: NaN and the infinities as JavaScript names)
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    return float.__repr__(value)


# JSON text of a value by its exact type, as json.JSONEncoder(ensure_ascii=False) writes it;
# any other type (lists, dicts, subclasses) goes through the encoder itself
_JSON_BY_TYPE: dict[type, Callable[[Any], str]] = {
    str: encode_basestring, int: int.__repr__, float: _json_float,
    type(None): lambda _: "null", bool: lambda value: "true" if value else "false",
}


def json_column(values: list[Any], encode: Callable[[Any], str]) -> list[str]:
    """Each value of a column as JSON text, the same text ``encode`` (the row encoder) gives it."""
    types = set(map(type, values))
    if types == {str}:
        distinct = set(values)
        if len(distinct) * 4 <= len(values):  # a column repeated per article (source, model...)
            return list(map({value: encode_basestring(value) for value in distinct}.__getitem__, values))
        return list(map(encode_basestring, values))
    if types == {int}:
        return list(map(int.__repr__, values))
    if types == {float} and all(map(math.isfinite, values)):
        return list(map(float.__repr__, values))
    if types == {type(None)}:
        return ["null"] * len(values)
    by_type = _JSON_BY_TYPE.get
    return [(by_type(type(value)) or encode)(value) for value in values]


def csv_column(values: list[Any], excel: bool = False) -> list[Any]:
    """:func:`csv_cell` of every value of a column (whole columns of numbers, or of text without
    ``excel``, are already their cells)."""
    types = set(map(type, values))
    if types <= {int, float} or (types == {str} and not excel):
        return values
    if types == {type(None)}:
        return [""] * len(values)
    return [csv_cell(value, excel) for value in values]


def arrow_type(column: str) -> Any:
    """The Arrow type of an output column: counts and offsets int64, probabilities and summary
    numbers float64, top sentences a list of ``{index, text, p}``, everything else string."""
    import pyarrow as pa

    if column in _INT_COLUMNS:
        return pa.int64()
    if column.startswith(_FLOAT_PREFIXES) or column == "net_stance":
        return pa.float64()
    if column in LIST_COLUMNS:
        return pa.list_(pa.struct([("index", pa.int64()), ("text", pa.string()), ("p", pa.float64())]))
    if column == "explanation":
        return pa.list_(pa.struct([("span", pa.string()), ("weight", pa.float64()), ("start", pa.int64()),
                                   ("end", pa.int64())]))
    return pa.string()


def csv_cell(value: Any, excel: bool = False) -> Any:
    """A value as a CSV cell: ``None`` empty, lists as JSON; with ``excel``, text that a spreadsheet
    would run as a formula gets a leading ``'`` (OWASP, "CSV Injection")."""
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    if excel and isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def arrow_schema(columns: list[str]) -> Any:
    """The ``pyarrow.Schema`` of rows with ``columns``."""
    import pyarrow as pa

    return pa.schema([(c, arrow_type(c)) for c in columns])


def output_paths(out_dir: Path, fmt: str) -> tuple[Path, Path]:
    """Where a scoring run writes: ``<out>/sentences.<fmt>`` and ``<out>/articles.<fmt>``."""
    return out_dir / f"sentences.{fmt}", out_dir / f"articles.{fmt}"


def mark_scores(out_dir: Path) -> None:
    """Write the marker by which later runs over a parent folder skip this run's score files."""
    from stance.scoring.readers import SCORES_MARKER

    (Path(out_dir) / SCORES_MARKER).write_text("written by `stance score`; its score files are not articles\n",
                                               encoding="utf-8")


def check_outputs(out_dir: Path, fmt: str, force: bool) -> tuple[Path, Path]:
    """The two output paths; raises ``ValueError`` for an unknown format and ``FileExistsError``
    when an output exists and ``force`` is false (before any work is done)."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    outputs = output_paths(Path(out_dir), fmt)
    for path in outputs:
        if path.exists() and not force:
            raise FileExistsError(f"{path} exists; pass --force to overwrite")
    return outputs


class RowWriter:
    """Writes rows with fixed ``columns`` to a JSONL, CSV or Parquet file, as they come.

    Raises ``ValueError`` for an unknown ``fmt``. Use as a context manager or call :meth:`close`.
    """

    def __init__(self, path: Path, columns: list[str], fmt: str, excel: bool = False) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        self.columns, self.fmt, self.path = columns, fmt, Path(path)
        self.buffer: list[dict[str, Any]] = []
        self.pending: list[Any] = []  # Parquet: column batches not yet written, and their row count
        self.pending_rows = 0
        if fmt == "parquet":
            import pyarrow.parquet as pq

            self.schema = arrow_schema(columns)
            self.parquet = pq.ParquetWriter(self.path, self.schema)
            return
        self.encode = json.JSONEncoder(ensure_ascii=False).encode  # one encoder, not one per row
        # the JSONL line of write_columns: keys as the encoder writes them, "%" doubled in them
        self.template = "{" + ", ".join(encode_basestring(c).replace("%", "%%") + ": %s" for c in columns) + "}\n"
        self.excel = excel and fmt == "csv"
        encoding = "utf-8-sig" if self.excel else "utf-8"
        self.handle: TextIO = self.path.open("w", encoding=encoding, errors="replace", newline="")
        if fmt == "csv":
            self.writer = csv.DictWriter(self.handle, fieldnames=columns, extrasaction="ignore")
            self.writer.writeheader()

    def __enter__(self) -> RowWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write_rows(self, rows: Iterable[dict[str, Any]]) -> None:
        """Write many rows (missing keys are empty); JSONL and CSV in one call to the file."""
        projected = ({c: row.get(c) for c in self.columns} for row in rows)
        if self.fmt == "parquet":
            for row in projected:
                self.buffer.append(row)
                if len(self.buffer) >= PARQUET_ROWS_PER_GROUP:
                    self._flush()
        elif self.fmt == "csv":
            self.writer.writerows({c: csv_cell(v, self.excel) for c, v in row.items()} for row in projected)
        else:
            self.handle.writelines(self.encode(row) + "\n" for row in projected)

    def write_columns(self, columns: dict[str, list[Any]]) -> None:
        """Write a batch of rows given as columns (equal-length lists; missing columns are empty).

        The file gets the same bytes as :meth:`write_rows` with the same rows: JSONL lines are
        assembled from each column's JSON text, CSV rows from each column's cells, and Parquet
        row groups keep their size (:data:`PARQUET_ROWS_PER_GROUP`). Raises ``ValueError`` when
        the columns differ in length.
        """
        lengths = {len(values) for values in columns.values()}
        if len(lengths) > 1:
            raise ValueError(f"columns of different lengths: {sorted(lengths)}")
        n = lengths.pop() if lengths else 0
        if not n:
            return
        full = [columns.get(c, [None] * n) for c in self.columns]
        if self.fmt == "parquet":
            import pyarrow as pa

            self._flush()  # rows given one by one first, in order
            self.pending.append(pa.Table.from_pydict(dict(zip(self.columns, full)), schema=self.schema))
            self.pending_rows += n
            while self.pending_rows >= PARQUET_ROWS_PER_GROUP:
                self._flush_pending(PARQUET_ROWS_PER_GROUP)
        elif self.fmt == "csv":
            cells = [csv_column(values, self.excel) for values in full]
            self.writer.writer.writerows(zip(*cells))
        else:
            # one %-template per file: '{"name": %s, ...}' with each column's JSON text filled in
            texts = [json_column(values, self.encode) for values in full]
            self.handle.writelines(self.template % row for row in zip(*texts))

    def _flush_pending(self, limit: int | None = None) -> None:
        """Write up to ``limit`` (all when ``None``) of the column batches' rows as one row group."""
        import pyarrow as pa

        if not self.pending_rows:
            return
        table = pa.concat_tables(self.pending)
        take = self.pending_rows if limit is None else min(limit, self.pending_rows)
        # one contiguous chunk per column, as a table made from rows has, so the file's bytes match
        self.parquet.write_table(table.slice(0, take).combine_chunks())
        rest = table.slice(take)
        self.pending, self.pending_rows = ([rest] if rest.num_rows else []), rest.num_rows

    def write_table(self, table: Any) -> None:
        """Write every row of a ``pyarrow.Table`` holding (at least) this writer's columns."""
        if self.fmt == "parquet":
            self._flush()
            self._flush_pending()
            self.parquet.write_table(table.select(self.columns).cast(self.schema))
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
            self._flush_pending()
            self.parquet.close()
        else:
            self.handle.close()
