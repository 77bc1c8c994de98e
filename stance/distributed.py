"""Batch scoring on Ray Data: the rows of :func:`stance.io.write_scores`, on many cores or a cluster.

The pipeline is plain Ray Data (no scheduler, pool or queue of our own)::

    article rows (bad inputs already error rows; numbered in input order)
      in blocks of ``articles_per_batch`` rows, materialised in the object store
      -> map_batches(_Scorer, compute=ActorPoolStrategy(size=actors), batch_size=articles_per_batch)
           every actor loads the model once (stance.api.load); per batch of articles it splits
           them into sentences (stance.segment), predicts the sentences ``batch_size`` at a
           time and summarises every article (stance.io.article_row -> stance.aggregate.summarise)
      -> per batch one table of the sentence rows and the article rows, in input order
         (Ray's ``preserve_order``; ``_seq`` numbers the articles and is checked)

An article's sentences never leave the batch that holds it, so its summary is made next to
its predictions, without a group-by. Rows are built by the functions of the single-process
path (``stance.io.sentence_rows``/``article_row``/``error_article_row``), so the results are
the same. Segmentation runs in the actors, not in a stage of Ray tasks of its own: an actor
holds its CPU for its whole life, and with as many actors as cores such tasks could never be
scheduled. For the same reason the articles are read and numbered before the actors start:
:func:`score_files` reads the files in this process (with :func:`stance.io.read_articles`,
so unreadable files and rows become the same error rows) and puts the blocks in the object
store; :func:`score_dataset` materialises the user's dataset first.

Ray is imported inside the functions: ``import stance`` and ``import stance.distributed``
never import it. Install it with ``pip install stance[ray]``.
"""

from __future__ import annotations

import glob
import os
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from stance.context import segment_with_context
from stance.io import (
    ARTICLE_COLUMNS,
    FORMATS,
    SENTENCE_COLUMNS,
    Article,
    RowWriter,
    arrow_type,
    article_row,
    error_article_row,
    output_paths,
    read_articles,
    sentence_rows,
)
from stance.labels import LABELS
from stance.text import has_visible_text

if TYPE_CHECKING:
    import pyarrow as pa
    import ray.data

ARTICLES_PER_BATCH = 64  # articles per Ray batch (as in stance.io.score_stream)

SEQ = "_seq"  # an article's position in the input (from 0)
KIND = "_article"  # False: a sentence row, True: an article row
_INPUT_COLUMNS = [SEQ, "source", "doc_id", "text", "error"]
_ROW_COLUMNS = [*SENTENCE_COLUMNS, *[c for c in ARTICLE_COLUMNS if c not in SENTENCE_COLUMNS]]
_GLOB_CHARS = set("*?[")


def _ray():
    """The ``ray`` module, or an ImportError that says how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as problem:  # pragma: no cover - ray is installed in the test environment
        raise ImportError(
            "the Ray engine needs Ray Data, which is not installed: pip install stance[ray]"
        ) from problem
    return ray


def _arrow_type(column: str) -> pa.DataType:
    import pyarrow as pa

    if column == SEQ:
        return pa.int64()
    if column == KIND:
        return pa.bool_()
    return arrow_type(column)


def _schema(columns: list[str]) -> pa.Schema:
    import pyarrow as pa

    return pa.schema([(c, _arrow_type(c)) for c in columns])


# ---------------------------------------------------------------------------------------------
# Input rows -> articles (the rules of stance.io._table_rows)


def record_article(record: Any, source: str, doc_id: str, number: int, text_field: str,
                   id_field: str | None) -> Article:
    """Row ``number`` (from 1) of a table as an :class:`Article`; an error article if it is unusable.

    The rules of the JSONL/CSV reader of :mod:`stance.io`: the id is the ``id_field`` value
    when set and not empty, else ``doc_id``; the text must be a non-empty string.
    """
    if not isinstance(record, dict):
        return Article(source, doc_id, error=f"row {number}: not an object")
    if id_field and record.get(id_field) not in (None, ""):
        doc_id = str(record[id_field])
    text = record.get(text_field)
    if not isinstance(text, str) or not has_visible_text(text):
        return Article(source, doc_id, error=f"row {number}: no text in field {text_field!r}")
    return Article(source, doc_id, text)


def _parquet_articles(path: Path, text_field: str, id_field: str | None) -> Iterator[Article]:
    import pyarrow.parquet as pq

    try:
        number = 0
        for batch in pq.ParquetFile(path).iter_batches():
            for record in batch.to_pylist():
                number += 1
                yield record_article(record, str(path), f"{path.name}:{number}", number, text_field, id_field)
    except (OSError, ValueError) as problem:  # pyarrow raises ArrowInvalid (a ValueError) on bad files
        yield Article(str(path), f"{path.name}:{number + 1}" if number else path.name,
                      error=f"unreadable Parquet: {problem}")


def file_articles(path: Path, text_field: str = "text", id_field: str | None = "id") -> Iterator[Article]:
    """Articles of one file: Parquet here, everything else by :func:`stance.io.read_articles`."""
    if path.suffix.lower() == ".parquet":
        yield from _parquet_articles(path, text_field, id_field)
    else:
        yield from read_articles([path], text_field, id_field)


def expand_inputs(inputs: Iterable[str | Path]) -> list[Path]:
    """Files to read, in the order :func:`stance.io.read_articles` reads them; globs expanded.

    A folder gives its files (recursively, sorted); a path that does not exist but holds
    ``*``, ``?`` or ``[`` is a glob (sorted matches, folders among them expanded). A path
    that matches nothing is kept, so that it becomes an error row.
    """
    files: list[Path] = []
    for raw in inputs:
        path = Path(raw)
        if not path.exists() and _GLOB_CHARS & set(str(raw)):
            matches = [Path(m) for m in sorted(glob.glob(str(raw), recursive=True))]
        else:
            matches = [path]
        for match in matches or [path]:
            if match.is_dir():
                files.extend(sorted(p for p in match.rglob("*") if p.is_file()))
            else:
                files.append(match)
    return files


def _tag(batch: pa.Table, key: str) -> pa.Table:
    """Ray task: a random id for this batch (``<key>_run``) and each row's number in it (``<key>_row``)."""
    import pyarrow as pa

    n = batch.num_rows
    run = secrets.randbits(63)
    return batch.append_column(f"{key}_run", pa.array(np.full(n, run, dtype=np.int64))) \
        .append_column(f"{key}_row", pa.array(np.arange(n, dtype=np.int64)))


def _runs(batch: pa.Table, key: str) -> pa.Table:
    """Ray task: the runs of consecutive rows of one tagged batch: (run, number of its first row, rows)."""
    import pyarrow as pa

    runs, rows = batch[f"{key}_run"].to_numpy(), batch[f"{key}_row"].to_numpy()
    starts = np.flatnonzero(np.r_[True, runs[1:] != runs[:-1]]) if len(runs) else np.zeros(0, np.int64)
    return pa.table({"run": runs[starts], "first": rows[starts], "n": np.diff(np.r_[starts, len(runs)])})


def _dataset_rows(batch: pa.Table, key: str, offsets: dict[int, int], text_field: str,
                  id_field: str | None, source_field: str | None) -> pa.Table:
    """Ray task: rows of a user's dataset as article rows; ``_seq`` is the row's position in the dataset."""
    import pyarrow as pa

    rows = []
    for record in batch.to_pylist():
        position = offsets[record.pop(f"{key}_run")] + record.pop(f"{key}_row")
        source = record.get(source_field) if source_field else None
        source = "" if source is None else str(source)
        article = record_article(record, source, str(position + 1), position + 1, text_field, id_field)
        rows.append({SEQ: position, "source": source, "doc_id": article.doc_id, "text": article.text,
                     "error": article.error})
    return pa.Table.from_pylist(rows, schema=_schema(_INPUT_COLUMNS))


# ---------------------------------------------------------------------------------------------
# The actor


class _Scorer:
    """Ray Data callable class: one model per actor; a batch of articles -> their sentence and article rows."""

    def __init__(self, model: str, model_name: str, batch_size: int) -> None:
        from stance.api import load

        self.model = load(model)
        self.model_name = model_name
        self.batch_size = max(1, int(batch_size))
        self.schema = _schema([SEQ, KIND, *_ROW_COLUMNS])

    def _predict(self, texts: list[str], contexts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, len(LABELS)))
        return np.concatenate([self.model.predict_proba(texts[i: i + self.batch_size], contexts[i: i + self.batch_size])
                               for i in range(0, len(texts), self.batch_size)])

    def __call__(self, batch: pa.Table) -> pa.Table:
        import pyarrow as pa

        records = batch.to_pylist()
        articles = [Article(r["source"], r["doc_id"], r["text"] or "", r["error"]) for r in records]
        pieces = [segment_with_context(a.text) if a.error is None else ([], []) for a in articles]
        spans = [sentences for sentences, _ in pieces]
        out: list[dict[str, Any]] = []
        try:
            proba = self._predict([s.text for sentences in spans for s in sentences],
                                  [c for _, mine in pieces for c in mine])
        except Exception as problem:  # as in stance.io.score_stream: report every article of the batch
            for record, article in zip(records, articles):
                row = error_article_row(article, self.model_name, f"scoring failed: {problem}")
                out.append({SEQ: record[SEQ], KIND: True, **row})
            return pa.Table.from_pylist(out, schema=self.schema)
        offset = 0
        for record, article, sentences in zip(records, articles, spans):
            seq = record[SEQ]
            if article.error is not None:
                out.append({SEQ: seq, KIND: True, **error_article_row(article, self.model_name, article.error)})
                continue
            mine = proba[offset: offset + len(sentences)]
            offset += len(sentences)
            out.extend({SEQ: seq, KIND: False, **row}
                       for row in sentence_rows(article, sentences, mine, self.model_name))
            out.append({SEQ: seq, KIND: True, **article_row(article, mine, self.model_name)})
        return pa.Table.from_pylist(out, schema=self.schema)


# ---------------------------------------------------------------------------------------------
# Pipelines


def _ordered(ds: ray.data.Dataset) -> ray.data.Dataset:
    """``ds`` with Ray Data told to keep the order of blocks (its context is private to our datasets)."""
    ds.context.execution_options.preserve_order = True
    return ds


def _check_sizes(batch_size: int, actors: int, articles_per_batch: int) -> None:
    for name, value in (("batch_size", batch_size), ("actors", actors), ("articles_per_batch", articles_per_batch)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")


def _model_args(model: str | Path | None) -> tuple[str, str]:
    """(absolute model folder for the actors, model name for the rows); raises if the model is missing."""
    from stance.api import _resolve, model_label

    return str(_resolve(model).resolve()), model_label(model)


def _score_articles(articles: ray.data.Dataset, model: str | Path | None, batch_size: int, actors: int,
                    articles_per_batch: int) -> ray.data.Dataset:
    """Article rows (columns ``_INPUT_COLUMNS``, in order, already in blocks of ``articles_per_batch``
    rows and materialised) -> sentence and article rows, in order."""
    ray = _ray()
    model_path, model_name = _model_args(model)
    env = {"env_vars": {"STANCE_HOME": os.environ["STANCE_HOME"]}} if os.environ.get("STANCE_HOME") else None
    return articles.map_batches(
        _Scorer,
        fn_constructor_args=(model_path, model_name, batch_size),
        batch_size=articles_per_batch,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=1,
        runtime_env=env,
    )


def _select(table: pa.Table, article: bool, columns: list[str]) -> pa.Table:
    import pyarrow.compute as pc

    mask = table[KIND] if article else pc.invert(table[KIND])
    return table.filter(mask).select(columns)


def score_dataset(
    ds: ray.data.Dataset,
    model: str | Path | None = None,
    batch_size: int = 256,
    actors: int = 1,
    text_field: str = "text",
    id_field: str | None = "id",
    source_field: str | None = "path",
    articles_per_batch: int = ARTICLES_PER_BATCH,
) -> tuple[ray.data.MaterializedDataset, ray.data.MaterializedDataset]:
    """Score a Ray Dataset of article rows; returns ``(sentence_rows, article_rows)`` datasets.

    Their columns are exactly :data:`stance.io.SENTENCE_COLUMNS` and
    :data:`stance.io.ARTICLE_COLUMNS`, and their rows are in the order of ``ds`` (read with
    Ray's ``preserve_order``, so a dataset read from many files keeps the order of its files).
    A row whose ``text_field`` is missing, not a string or empty becomes an error article row.
    ``doc_id`` is the ``id_field`` value when set, else the row's 1-based position in ``ds``.
    ``source`` is the ``source_field`` column (e.g. ``path`` of ``read_*(...,
    include_paths=True)``), else empty.

    ``actors`` actors each load the model once and predict ``batch_size`` sentences per
    call. The scoring runs here, to the end: both results are materialised in the object
    store, so reading them (``take_all``, ``iter_batches``, ``write_parquet``...) costs no
    second prediction and keeps the order.
    """
    ray = _ray()
    _check_sizes(batch_size, actors, articles_per_batch)
    key = "_stance"
    options = ds.context.execution_options
    preserve_order = options.preserve_order
    options.preserve_order = True  # on the context ds shares with what is derived here; restored below
    try:
        source_field = source_field if source_field and source_field in (ds.columns() or []) else None
        data = ds.map_batches(_tag, batch_format="pyarrow", fn_args=(key,)).materialize()
        if data.count() == 0:
            return (ray.data.from_arrow(_schema(SENTENCE_COLUMNS).empty_table()),
                    ray.data.from_arrow(_schema(ARTICLE_COLUMNS).empty_table()))
        # Each row's position: the rows of one tagged batch are consecutive, and the batches in order.
        offsets: dict[int, int] = {}
        position = 0
        for run in data.map_batches(_runs, batch_format="pyarrow", batch_size=None, fn_args=(key,)).iter_rows():
            offsets.setdefault(int(run["run"]), position - int(run["first"]))
            position += int(run["n"])
        articles = data.map_batches(_dataset_rows, batch_format="pyarrow",
                                    fn_args=(key, offsets, text_field, id_field, source_field))
        # read and number everything before the actors take the CPUs (see the module docstring)
        articles = articles.repartition(target_num_rows_per_block=articles_per_batch).materialize()
        scored = _score_articles(articles, model, batch_size, actors, articles_per_batch).materialize()
        sentences = scored.map_batches(_select, batch_format="pyarrow", fn_args=(False, SENTENCE_COLUMNS))
        summaries = scored.map_batches(_select, batch_format="pyarrow", fn_args=(True, ARTICLE_COLUMNS))
        return sentences.materialize(), summaries.materialize()
    finally:
        options.preserve_order = preserve_order


def _article_tables(files: list[Path], text_field: str, id_field: str | None, rows: int) -> Iterator[pa.Table]:
    """The articles of ``files`` as tables of ``rows`` article rows, numbered in input order."""
    import pyarrow as pa

    schema = _schema(_INPUT_COLUMNS)
    chunk: list[dict[str, Any]] = []
    articles = (article for path in files for article in file_articles(path, text_field, id_field))
    for seq, article in enumerate(articles):
        chunk.append({SEQ: seq, "source": article.source, "doc_id": article.doc_id, "text": article.text,
                      "error": article.error})
        if len(chunk) >= rows:
            yield pa.Table.from_pylist(chunk, schema=schema)
            chunk = []
    if chunk:
        yield pa.Table.from_pylist(chunk, schema=schema)


def _connect(address: str | None) -> bool:
    """Connect to ``address``/$RAY_ADDRESS, or start a local Ray; True when this call started it."""
    ray = _ray()
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    return True


def score_files(
    inputs: Iterable[str | Path],
    out_dir: str | Path,
    model: str | Path | None = None,
    fmt: str = "jsonl",
    text_field: str = "text",
    id_field: str | None = "id",
    batch_size: int = 256,
    actors: int = 1,
    address: str | None = None,
    force: bool = False,
    articles_per_batch: int = ARTICLES_PER_BATCH,
) -> dict[str, int]:
    """Score files on Ray into ``out_dir``/``sentences.<fmt>`` and ``articles.<fmt>``; returns counts.

    ``inputs``: text files, folders of them, JSONL, CSV or Parquet files, or globs of them,
    on this machine. The rows (their order, and the error rows of unreadable files and rows)
    are those of :func:`stance.io.write_scores` over :func:`stance.io.read_articles`;
    Parquet rows follow the rules of JSONL rows. This process reads the inputs into the
    object store and writes the outputs; the actors segment, predict and summarise. The
    rows stream back in input order and are written as they come (``jsonl``/``csv`` with
    :class:`stance.io.RowWriter`, or ``parquet``): two files whatever the size of the cluster.

    Connects to ``address`` (or ``$RAY_ADDRESS``), else starts a local Ray on every core and
    stops it at the end; an already started Ray is used as it is. Returns
    ``{"articles", "sentences", "errors"}``. Raises ``FileExistsError`` when an output exists
    and ``force`` is false, before Ray is started.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    _check_sizes(batch_size, actors, articles_per_batch)
    out_dir = Path(out_dir)
    sentences_path, articles_path = output_paths(out_dir, fmt)
    for path in (sentences_path, articles_path):
        if path.exists() and not force:
            raise FileExistsError(f"{path} exists; pass --force to overwrite")
    ray = _ray()
    _model_args(model)  # a missing model fails here, before Ray starts
    files = expand_inputs(inputs)
    started = _connect(address)
    try:
        counts = {"articles": 0, "sentences": 0, "errors": 0}
        out_dir.mkdir(parents=True, exist_ok=True)
        sentence_out = RowWriter(sentences_path, SENTENCE_COLUMNS, fmt)
        article_out = RowWriter(articles_path, ARTICLE_COLUMNS, fmt)
        try:
            refs = [ray.put(table) for table in _article_tables(files, text_field, id_field, articles_per_batch)]
            if not refs:
                return counts
            articles = _ordered(ray.data.from_arrow_refs(refs))
            scored = _score_articles(articles, model, batch_size, actors, articles_per_batch)
            last = -1
            for table in scored.iter_batches(batch_format="pyarrow", batch_size=None):
                if not table.num_rows:
                    continue
                seqs = table[SEQ].to_numpy()
                if seqs[0] < last or (np.diff(seqs) < 0).any():  # preserve_order makes this impossible
                    raise RuntimeError("Ray Data returned rows out of input order")
                last = int(seqs[-1])
                sentences, summaries = _select(table, False, SENTENCE_COLUMNS), _select(table, True, ARTICLE_COLUMNS)
                # a block holds whole articles, so writing its sentences then its summaries keeps both files in order
                sentence_out.write_table(sentences)
                article_out.write_table(summaries)
                counts["sentences"] += sentences.num_rows
                counts["articles"] += summaries.num_rows
                counts["errors"] += summaries.num_rows - summaries["error"].null_count
        finally:
            sentence_out.close()
            article_out.close()
        return counts
    finally:
        if started:
            ray.shutdown()
