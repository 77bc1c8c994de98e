"""One writer family for scored rows: JSONL, CSV and Parquet, written as rows come.

Used by the local and the Ray engine alike. Memory stays flat: JSONL and CSV rows go straight
to the file; Parquet rows are buffered into row groups of :data:`PARQUET_ROWS_PER_GROUP`.
Text is written as UTF-8; ``csv_bom=True`` starts a CSV with a byte-order mark so that
spreadsheet programs on Windows read it as UTF-8. A lone surrogate that reached a writer (the
readers replace them) is written as ``?`` rather than ending the run.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

from stance.labels import LABELS

FORMATS = ("jsonl", "csv", "parquet")
PARQUET_ROWS_PER_GROUP = 10_000
_INT_COLUMNS = frozenset({"sentence_index", "start", "end", "n_sentences", *[f"n_{x}" for x in LABELS]})


def arrow_type(column: str) -> Any:
    """The Arrow type of an output column (counts and offsets int64, probabilities float64, else string)."""
    import pyarrow as pa

    if column in _INT_COLUMNS:
        return pa.int64()
    if column.startswith(("p_", "share_", "mean_p_")) or column == "net_stance":
        return pa.float64()
    return pa.string()


def arrow_schema(columns: list[str]) -> Any:
    """The ``pyarrow.Schema`` of rows with ``columns``."""
    import pyarrow as pa

    return pa.schema([(c, arrow_type(c)) for c in columns])


def output_paths(out_dir: Path, fmt: str) -> tuple[Path, Path]:
    """Where a scoring run writes: ``<out>/sentences.<fmt>`` and ``<out>/articles.<fmt>``."""
    return out_dir / f"sentences.{fmt}", out_dir / f"articles.{fmt}"


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

    def __init__(self, path: Path, columns: list[str], fmt: str, csv_bom: bool = False) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        self.columns, self.fmt, self.path = columns, fmt, Path(path)
        self.buffer: list[dict[str, Any]] = []
        if fmt == "parquet":
            import pyarrow.parquet as pq

            self.schema = arrow_schema(columns)
            self.parquet = pq.ParquetWriter(self.path, self.schema)
            return
        self.encode = json.JSONEncoder(ensure_ascii=False).encode  # one encoder, not one per row
        encoding = "utf-8-sig" if csv_bom and fmt == "csv" else "utf-8"
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
            self.writer.writerows({c: ("" if v is None else v) for c, v in row.items()} for row in projected)
        else:
            self.handle.writelines(self.encode(row) + "\n" for row in projected)

    def write_table(self, table: Any) -> None:
        """Write every row of a ``pyarrow.Table`` holding (at least) this writer's columns."""
        if self.fmt == "parquet":
            self._flush()
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
            self.parquet.close()
        else:
            self.handle.close()
