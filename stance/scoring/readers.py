"""One reader for every input kind, shared by the local and the Ray engine.

Inputs: text or Markdown files (one article each), folders of them (searched recursively),
JSONL, CSV and Parquet files (one article per row), globs of any of these (quoted or not), and
``-`` for standard input. Every input becomes :class:`Article` values, in a stable order: the
inputs in the order given, a folder's or a glob's files sorted by path, a table's rows in order.

Clean text at the boundary, in this one place (so ``score``, ``report`` and the API see the
same text):

* bytes are decoded as UTF-8 with a leading byte-order mark dropped (``utf-8-sig``); JSONL is
  decoded line by line and CSV cell by cell, so a bad byte costs at most its own row;
* undecodable bytes and lone UTF-16 surrogates (a truncated emoji from scraped JSON) are
  replaced with U+FFFD and the row says so in ``warnings``;
* line endings are universal: ``\\r\\n`` and a lone ``\\r`` become ``\\n``. Sentence offsets count
  code points of the text as decoded and normalised by these rules;
* text without a visible character (:func:`stance.text.has_visible_text`) is an "empty" error.

A file that cannot be read, a row that is not an object or has no text, or any other failure of
one input becomes one error :class:`Article` naming it (source, row or line number, a one-line
reason); every other input is still read. Nothing here raises for bad input.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from stance.text import has_visible_text

TEXT_SUFFIXES = frozenset({".txt", ".md", ".markdown", ".text"})
TABLE_SUFFIXES = frozenset({".jsonl", ".ndjson", ".csv", ".parquet"})
# what a folder contributes: other files in a folder (a report written beside an article, a
# .DS_Store, notes) are not articles; a file named explicitly is read whatever its suffix
FOLDER_SUFFIXES = TEXT_SUFFIXES | TABLE_SUFFIXES
STDIN = "-"
STDIN_FORMATS = ("text", "jsonl", "csv")
_GLOB_CHARS = frozenset("*?[")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_NEWLINES = re.compile(r"\r\n?")
# pyarrow's CSV reader needs a row to fit in one block; whole files up to this size are one block
_CSV_MAX_BLOCK = 1 << 28


@dataclass(frozen=True)
class Article:
    """One input article, or (``error`` set) one input that could not be read.

    ``source``: the file it came from (``<stdin>`` for standard input, or the dataset's source
    column); ``doc_id``: the file's path relative to the folder or glob it was found by, or
    ``<file name>:<row>`` / the ``id`` column for table rows. ``text`` is clean (see the module
    docstring); ``warnings`` lists what the cleaning changed, ``;``-joined, or ``None``; ``meta``
    holds a table row's other fields (all but the text field), each as text, for ``--keep-fields``.
    """

    source: str
    doc_id: str
    text: str = ""
    error: str | None = None
    warnings: str | None = None
    meta: dict[str, Any] | None = None


def clean_text(text: str) -> tuple[str, list[str]]:
    """``text`` with lone surrogates replaced by U+FFFD and universal newlines; and the warnings.

    Both rules keep ``len``-stable offsets except ``\\r\\n`` -> ``\\n``, which is why offsets are
    defined on the cleaned text.
    """
    warnings: list[str] = []
    text, replaced = _LONE_SURROGATE.subn("\ufffd", text)
    if replaced:
        warnings.append(f"{replaced} lone surrogate(s) replaced with U+FFFD")
    if "\r" in text:
        text = _NEWLINES.sub("\n", text)
    return text, warnings


def decode_bytes(data: bytes) -> tuple[str, list[str]]:
    """UTF-8 bytes (a leading BOM dropped) -> clean text and warnings (bad bytes -> U+FFFD)."""
    warnings: list[str] = []
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("utf-8-sig", errors="replace")
        replaced = text.count("\ufffd") - data.count("\ufffd".encode())
        warnings.append(f"{replaced} undecodable byte sequence(s) replaced with U+FFFD")
    text, more = clean_text(text)
    return text, warnings + more


def _article(source: str, doc_id: str, text: str, warnings: list[str], where: str = "",
             meta: dict[str, Any] | None = None) -> Article:
    joined = "; ".join(warnings) or None
    if not has_visible_text(text):
        return Article(source, doc_id, error=f"{where}empty: no visible text", warnings=joined, meta=meta)
    return Article(source, doc_id, text, warnings=joined, meta=meta)


def _as_text(value: Any) -> str | None:
    """A metadata value as text: strings cleaned, bytes decoded, dates in ISO form, lists and objects as JSON."""
    if value is None or isinstance(value, str):
        return None if value is None else clean_text(value)[0]
    if isinstance(value, bytes):
        return decode_bytes(value)[0]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def record_article(record: Any, source: str, doc_id: str, number: int, text_field: str,
                   id_field: str | None) -> Article:
    """Row ``number`` (from 1) of a table (JSONL, CSV, Parquet or a Ray Dataset) as an Article.

    The id is the ``id_field`` value when present and not empty, else ``doc_id``. The text must
    be a string (or UTF-8 bytes) with a visible character; otherwise the row is an error Article.
    """
    if not isinstance(record, dict):
        return Article(source, doc_id, error=f"row {number}: not an object")
    meta = {str(key): _as_text(value) for key, value in record.items() if key != text_field}
    identifier = record.get(id_field) if id_field else None
    if isinstance(identifier, bytes):
        identifier = decode_bytes(identifier)[0]
    if identifier not in (None, ""):
        doc_id = _LONE_SURROGATE.sub("\ufffd", str(identifier))
    text = record.get(text_field)
    if isinstance(text, bytes):
        text, warnings = decode_bytes(text)
    elif isinstance(text, str):
        text, warnings = clean_text(text)
    else:
        return Article(source, doc_id, error=f"row {number}: no text in field {text_field!r}", meta=meta)
    return _article(source, doc_id, text, warnings, f"row {number}: ", meta)


def _jsonl(handle: BinaryIO, source: str, name: str, text_field: str, id_field: str | None) -> Iterator[Article]:
    for number, raw in enumerate(handle, start=1):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        if not raw.strip():
            continue
        doc_id = f"{name}:{number}"
        line, warnings = decode_bytes(raw)
        try:
            record = json.loads(line)
        except json.JSONDecodeError as problem:
            yield Article(source, doc_id, error=f"line {number}: invalid JSON ({problem.msg})")
            continue
        article = record_article(record, source, doc_id, number, text_field, id_field)
        if warnings and article.error is None:
            extra = "; ".join(filter(None, [article.warnings, *warnings]))
            article = Article(article.source, article.doc_id, article.text, warnings=extra, meta=article.meta)
        yield article


def _csv_header(data: bytes) -> list[str]:
    first = data.split(b"\n", 1)[0].decode("utf-8-sig", errors="replace").rstrip("\r")
    return next(csv.reader([first]), [])


def _csv(data: bytes, source: str, name: str, text_field: str, id_field: str | None) -> Iterator[Article]:
    # pyarrow's reader: no field-size limit (Python's csv module stops at 131,072 characters unless
    # a process-wide limit is raised), quoted newlines, CRLF; every column read as bytes so each
    # cell is decoded on its own
    import pyarrow as pa
    import pyarrow.csv as pcsv

    header = _csv_header(data)
    if text_field not in header:
        yield Article(source, name, error=f"no column {text_field!r} in the CSV header ({', '.join(header)})")
        return
    bad_rows: list[str] = []

    def on_invalid(row: Any) -> str:
        bad_rows.append(f"{row.actual_columns} cells where the header has {row.expected_columns}")
        return "skip"

    reader = pcsv.open_csv(
        io.BytesIO(data),
        read_options=pcsv.ReadOptions(block_size=min(max(len(data) + 1, 1 << 20), _CSV_MAX_BLOCK)),
        parse_options=pcsv.ParseOptions(newlines_in_values=True, invalid_row_handler=on_invalid),
        convert_options=pcsv.ConvertOptions(column_types={c: pa.binary() for c in header},
                                            strings_can_be_null=False, quoted_strings_can_be_null=False),
    )
    number = 0
    for batch in reader:
        while bad_rows:
            yield Article(source, f"{name}:?", error=f"a malformed row: {bad_rows.pop(0)}")
        for record in batch.to_pylist():
            number += 1
            yield record_article(record, source, f"{name}:{number}", number, text_field, id_field)
    for problem in bad_rows:
        yield Article(source, f"{name}:?", error=f"a malformed row: {problem}")


def _parquet(path: Path, source: str, name: str, text_field: str, id_field: str | None) -> Iterator[Article]:
    import pyarrow.parquet as pq

    number = 0
    for batch in pq.ParquetFile(path).iter_batches():
        for record in batch.to_pylist():
            number += 1
            yield record_article(record, source, f"{name}:{number}", number, text_field, id_field)


def _text(data: bytes, source: str, doc_id: str) -> Article:
    if b"\x00" in data:
        return Article(source, doc_id, error="not text: the file holds NUL bytes (binary?)")
    text, warnings = decode_bytes(data)
    return _article(source, doc_id, text, warnings)


def _kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in {".jsonl", ".ndjson"}:
        return "jsonl"
    return suffix[1:] if suffix in TABLE_SUFFIXES else "text"


def _read_handle(handle: BinaryIO, kind: str, source: str, name: str, doc_id: str, text_field: str,
                 id_field: str | None) -> Iterator[Article]:
    """The articles of an open binary file or stream holding ``kind`` (jsonl, csv or text)."""
    if kind == "jsonl":
        yield from _jsonl(handle, source, name, text_field, id_field)
    elif kind == "csv":
        yield from _csv(handle.read(), source, name, text_field, id_field)
    else:
        yield _text(handle.read(), source, doc_id)


def read_file(path: Path, doc_id: str, text_field: str = "text", id_field: str | None = "id",
              kind: str | None = None) -> Iterator[Article]:
    """The articles of one file (``kind``: text, jsonl, csv or parquet; by suffix when None).

    Any failure while reading becomes one error Article naming the file (articles read before
    it are kept).
    """
    source, kind = str(path), kind or _kind(path)
    try:
        if kind == "parquet":
            yield from _parquet(path, source, path.name, text_field, id_field)
        else:
            with path.open("rb") as handle:
                yield from _read_handle(handle, kind, source, path.name, doc_id, text_field, id_field)
    except OSError as problem:
        yield Article(source, doc_id, error=f"unreadable: {problem.strerror or problem}")
    except Exception as problem:  # a reader library's own error (bad Parquet, bad CSV) stays this file's row
        yield Article(source, doc_id, error=f"unreadable {kind}: {one_line(problem)}")


def read_stream(handle: BinaryIO, fmt: str = "text", text_field: str = "text", id_field: str | None = "id",
                source: str = "<stdin>") -> Iterator[Article]:
    """Articles from a binary stream: one text article (``text``), or JSONL/CSV rows.

    Raises ``ValueError`` for an unknown ``fmt`` (a usage error, not a bad input).
    """
    if fmt not in STDIN_FORMATS:
        raise ValueError(f"stdin format must be one of {', '.join(STDIN_FORMATS)}, got {fmt!r}")
    try:
        yield from _read_handle(handle, fmt, source, source, source, text_field, id_field)
    except Exception as problem:
        yield Article(source, source, error=f"unreadable {fmt}: {one_line(problem)}")


def one_line(problem: BaseException) -> str:
    """An exception as one line: its type and first line of message."""
    message = str(problem).strip().splitlines()
    return f"{type(problem).__name__}: {message[0]}" if message else type(problem).__name__


def _relative(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return path.as_posix()


# written beside `stance score` output, so that a later run over a parent folder skips those files
SCORES_MARKER = ".stance-scores"
SCORE_FILES = frozenset(f"{kind}.{fmt}" for kind in ("sentences", "articles") for fmt in ("jsonl", "csv", "parquet"))


def _is_article_file(path: Path, folder: Path, pattern: str | None) -> bool:
    relative = path.relative_to(folder)
    if any(part.startswith(".") for part in relative.parts):
        return False
    if path.name in SCORE_FILES and (path.parent / SCORES_MARKER).exists():
        return False
    return path.match(pattern) if pattern else path.suffix.lower() in FOLDER_SUFFIXES


def _folder_files(folder: Path, pattern: str | None = None) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and _is_article_file(p, folder, pattern))


def expand_inputs(inputs: Iterable[str | Path], folder_glob: str | None = None) -> list[tuple[str | Path, str]]:
    """Each input as ``(path or "-", doc_id)``, in reading order.

    A folder gives its article files, recursively, sorted: those with a suffix in
    :data:`FOLDER_SUFFIXES` (or matching ``folder_glob``, e.g. ``"*.txt"``), never hidden files nor
    the score files of an earlier ``stance score`` run (marked by :data:`SCORES_MARKER`); each with
    its path relative to the folder as ``doc_id`` (two ``article.txt`` in different subfolders stay apart). A path that does not exist but holds
    ``*``, ``?`` or ``[`` is a glob (``**`` recursive), its matches sorted. A path that matches
    nothing is kept so that it becomes an error row. ``-`` is standard input.
    """
    out: list[tuple[str | Path, str]] = []
    for raw in inputs:
        if str(raw) == STDIN:
            out.append((STDIN, "<stdin>"))
            continue
        path = Path(raw)
        if not path.exists() and _GLOB_CHARS & set(str(raw)):
            matches = [Path(m) for m in sorted(glob.glob(str(raw), recursive=True))]
        else:
            matches = [path]
        for match in matches or [path]:
            if match.is_dir():
                out.extend((p, _relative(p, match)) for p in _folder_files(match, folder_glob))
            else:
                out.append((match, match.name))
    return out


def read_articles(
    inputs: Iterable[str | Path],
    text_field: str = "text",
    id_field: str | None = "id",
    stdin_format: str = "text",
    stdin: BinaryIO | None = None,
    folder_glob: str | None = None,
) -> Iterator[Article]:
    """Articles from files, folders, globs, JSONL, CSV, Parquet and ``-`` (stdin), in a stable order.

    Bad inputs become error Articles (see the module docstring); this never raises for bad
    input. Raises ``ValueError`` for an unknown ``stdin_format``.
    """
    if stdin_format not in STDIN_FORMATS:
        raise ValueError(f"stdin format must be one of {', '.join(STDIN_FORMATS)}, got {stdin_format!r}")
    for path, doc_id in expand_inputs(inputs, folder_glob):
        if path == STDIN:
            yield from read_stream(stdin if stdin is not None else sys.stdin.buffer, stdin_format, text_field, id_field)
        else:
            yield from read_file(Path(path), doc_id, text_field, id_field)
