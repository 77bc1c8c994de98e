"""Batch scoring on Ray Data: the rows of the local engine, on many cores or a cluster.

The pipeline is plain Ray Data (no scheduler, pool or queue of our own)::

    article rows (read by stance.scoring.readers in this process; numbered in input order)
      in blocks of ``articles_per_batch`` rows, materialised in the object store
      -> map_batches(_Scorer, compute=ActorPoolStrategy(size=actors), batch_size=articles_per_batch)
           every actor loads the model once, from the model folder's bytes that the driver put
           in the object store (workers need no copy of the store), and scores each batch with
           the one scoring kernel (stance.scoring.kernel.Kernel)
      -> per batch one table of the sentence rows and the article rows, in input order
         (Ray's ``preserve_order``; ``_seq`` numbers the articles and is checked)

An article's sentences never leave the batch that holds it, so its summary is made next to
its predictions, without a group-by. Segmentation runs in the actors, not in a stage of Ray
tasks of its own: an actor holds its CPU for its whole life, and with as many actors as cores
such tasks could never be scheduled. For the same reason the articles are read and numbered
before the actors start. A model that reads weights from outside its folder (an installed
encoder, recorded by sha256 in its config) needs that encoder installed on every worker.

Ray is imported inside the functions: ``import stance`` and importing this module never import
it. Install it with ``pip install stance[ray]``.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from stance.scoring.kernel import ARTICLE_COLUMNS, EXPLANATION, SENTENCE_COLUMNS, Kernel, meta_columns
from stance.scoring.readers import Article, read_articles, record_article
from stance.scoring.writers import RowWriter, arrow_type, check_outputs, mark_scores

if TYPE_CHECKING:
    import pyarrow as pa
    import ray.data

    from stance.models.store import ModelRef

ARTICLES_PER_BATCH = 64  # articles per Ray batch (as in the local engine)

SEQ = "_seq"  # an article's position in the input (from 0)
KIND = "_article"  # False: a sentence row, True: an article row
META = "_meta"  # an article's metadata fields, as JSON text
_INPUT_COLUMNS = [SEQ, "source", "doc_id", "text", "error", "warnings", META]


def _row_columns(keep_fields: Sequence[str], explain: int = 0) -> tuple[list[str], list[str], list[str]]:
    """(sentence columns, article columns, the union in one table) for these kept fields and explanations."""
    meta = meta_columns(keep_fields)
    sentences, articles = [*SENTENCE_COLUMNS, *([EXPLANATION] if explain else []), *meta], [*ARTICLE_COLUMNS, *meta]
    return sentences, articles, [*sentences, *[c for c in articles if c not in sentences]]


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


def _input_row(seq: int, article: Article) -> dict[str, Any]:
    return {SEQ: seq, "source": article.source, "doc_id": article.doc_id, "text": article.text,
            "error": article.error, "warnings": article.warnings,
            META: None if article.meta is None else json.dumps(article.meta, ensure_ascii=False)}


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
        rows.append(_input_row(position, article))
    return pa.Table.from_pylist(rows, schema=_schema(_INPUT_COLUMNS))


# ---------------------------------------------------------------------------------------------
# The model, shipped from the driver


def model_payload(ref: ModelRef, backend: str | None = None) -> dict[str, Any]:
    """A resolved model as plain data for the object store: its name, sha256, every file's bytes
    and the inference backend to run it on (``None``: the model's default)."""
    files = {p.relative_to(ref.path).as_posix(): p.read_bytes() for p in sorted(ref.path.rglob("*")) if p.is_file()}
    return {"name": ref.name, "sha256": ref.sha256, "files": files, "backend": backend}


def load_payload(payload: dict[str, Any]) -> tuple[Any, str, str]:
    """(model, name, sha256) from :func:`model_payload`'s data, unpacked on this worker
    (:func:`unpacked_model`: one folder per user, model name and sha256, shared by the node's actors).

    Raises ``ValueError`` when the unpacked files do not hash to the recorded sha256, or for a
    backend the model cannot run.
    """
    from stance.models import load_model

    folder = unpacked_model(payload)
    return load_model(folder).with_backend(payload.get("backend")), payload["name"], payload["sha256"]


def _user_folder(root: Path | None) -> Path:
    """``<root>/stance-models-<uid>`` (``root``: :func:`tempfile.gettempdir`), private to this user.

    Raises ``PermissionError`` when that folder exists but belongs to another user or is open to
    others (someone could have planted or may change files there).
    """
    uid = os.getuid() if hasattr(os, "getuid") else None
    folder = Path(root or tempfile.gettempdir()) / f"stance-models-{uid if uid is not None else 'user'}"
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.mkdir(mode=0o700, exist_ok=True)
    info = folder.stat()
    if uid is not None and (info.st_uid != uid or info.st_mode & 0o077):
        raise PermissionError(f"{folder} is not a private folder of this user")
    return folder


def unpacked_model(payload: dict[str, Any], root: Path | None = None) -> Path:
    """The folder holding :func:`model_payload`'s files:
    ``<root>/stance-models-<uid>/<sha256>-<name>/<name>``.

    Every actor of a run (and of later runs) on a node gets the same folder, so what a run leaves
    behind is bounded by the models it used, however many actors start or are killed. A file lock
    serialises the check and the unpacking per model: a copy that is there and hashes to the
    payload's sha256 is used; otherwise the files are written to a staging folder, checked and
    renamed into place (a damaged copy, or a staging folder of an actor killed mid-way, is removed
    first). Where the user's folder cannot be used (:func:`_user_folder`), the model goes to a
    private temporary folder, as before. ``root`` defaults to :func:`tempfile.gettempdir`.
    Raises ``ValueError`` when the payload's bytes do not hash to its sha256.
    """
    import shutil

    from filelock import FileLock

    sha256, name = str(payload["sha256"]), str(payload["name"])
    try:
        parent = _user_folder(root)
    except OSError:
        parent = Path(tempfile.mkdtemp(prefix="stance-model-", dir=root))
    # the name is part of the key: the sha256 leaves out model cards, so two names can share it
    key = f"{sha256}-{name}"
    home = parent / key
    with FileLock(str(parent / f"{key}.lock")):
        if _holds(home / name, sha256):
            return home / name
        for leftover in parent.glob(f".staging-{key}-*"):  # no one else unpacks this model now
            shutil.rmtree(leftover, ignore_errors=True)
        staging = Path(tempfile.mkdtemp(prefix=f".staging-{key}-", dir=parent))
        for relative, data in payload["files"].items():
            target = staging / name / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        if not _holds(staging / name, sha256):
            shutil.rmtree(staging, ignore_errors=True)
            raise ValueError(f"model {name!r} arrived with other bytes than the driver sent")
        shutil.rmtree(home, ignore_errors=True)  # a damaged copy, if any
        os.rename(staging, home)
    return home / name


def _holds(folder: Path, sha256: str) -> bool:
    from stance.models.store import folder_sha256

    try:
        return folder.is_dir() and folder_sha256(folder) == sha256
    except (OSError, ValueError):  # unreadable, or a config.json that is no longer JSON
        return False


# ---------------------------------------------------------------------------------------------
# The actor


class _Scorer:
    """Ray Data callable class: one model per actor; a batch of articles -> their sentence and article rows."""

    def __init__(self, payload: Any, batch_size: int, keep_fields: Sequence[str] = (), explain: int = 0) -> None:
        ray = _ray()
        if isinstance(payload, ray.ObjectRef):
            payload = ray.get(payload)
        model, name, sha256 = load_payload(payload)
        self.kernel = Kernel(model, name, sha256, max(1, int(batch_size)), keep_fields, explain)
        self.schema = _schema([SEQ, KIND, *_row_columns(keep_fields, explain)[2]])

    def __call__(self, batch: pa.Table) -> pa.Table:
        import pyarrow as pa

        records = batch.to_pylist()
        articles = [Article(r["source"], r["doc_id"], r["text"] or "", r["error"], r["warnings"],
                            None if r[META] is None else json.loads(r[META])) for r in records]
        out: list[dict[str, Any]] = []
        for record, (sentence_rows, article_row) in zip(records, self.kernel.rows(articles)):
            out.extend({SEQ: record[SEQ], KIND: False, **row} for row in sentence_rows)
            out.append({SEQ: record[SEQ], KIND: True, **article_row})
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


def _model_ref(model: str | Path | None, backend: str | None = None) -> ModelRef:
    """The driver's model (raises :class:`~stance.models.ModelNotFoundError` if it is missing, and
    ``ValueError`` for an unknown backend)."""
    from stance.models.backends import check_backend
    from stance.models.store import resolve

    if backend is not None:
        check_backend(backend)
    return resolve(model)


def _score_articles(articles: ray.data.Dataset, ref: ModelRef, batch_size: int, actors: int,
                    articles_per_batch: int, runtime_env: dict[str, Any] | None,
                    keep_fields: Sequence[str], explain: int, backend: str | None = None) -> ray.data.Dataset:
    """Article rows (columns ``_INPUT_COLUMNS``, in order, already in blocks of ``articles_per_batch``
    rows and materialised) -> sentence and article rows, in order."""
    ray = _ray()
    payload = ray.put(model_payload(ref, backend))
    return articles.map_batches(
        _Scorer,
        fn_constructor_args=(payload, batch_size, list(keep_fields), explain),
        batch_size=articles_per_batch,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=1,
        runtime_env=runtime_env,
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
    runtime_env: dict[str, Any] | None = None,
    keep_fields: Sequence[str] = (),
    explain: int = 0,
    backend: str | None = None,
) -> tuple[ray.data.MaterializedDataset, ray.data.MaterializedDataset]:
    """Score a Ray Dataset of article rows; returns ``(sentence_rows, article_rows)`` datasets.

    Their columns are exactly :data:`stance.scoring.kernel.SENTENCE_COLUMNS` and
    :data:`~stance.scoring.kernel.ARTICLE_COLUMNS`, and their rows are in the order of ``ds`` (read with
    Ray's ``preserve_order``, so a dataset read from many files keeps the order of its files).
    A row whose ``text_field`` is missing, not a string or empty becomes an error article row.
    ``doc_id`` is the ``id_field`` value when set, else the row's 1-based position in ``ds``.
    ``source`` is the ``source_field`` column (e.g. ``path`` of ``read_*(...,
    include_paths=True)``), else empty.

    ``actors`` actors each load the model once and predict ``batch_size`` sentences per
    call. The scoring runs here, to the end: both results are materialised in the object
    store, so reading them (``take_all``, ``iter_batches``, ``write_parquet``...) costs no
    second prediction and keeps the order. The model is resolved here (the driver's store) and
    its folder's bytes reach the actors through the object store. ``runtime_env`` is passed to
    the actors (Ray's runtime environment: ``env_vars``, ``pip``...). ``backend``: the inference
    backend the actors run the model on (:func:`stance.load`).
    """
    ray = _ray()
    _check_sizes(batch_size, actors, articles_per_batch)
    ref = _model_ref(model, backend)
    sentence_columns, article_columns, _ = _row_columns(keep_fields, explain)
    key = "_stance"
    options = ds.context.execution_options
    preserve_order = options.preserve_order
    options.preserve_order = True  # on the context ds shares with what is derived here; restored below
    try:
        source_field = source_field if source_field and source_field in (ds.columns() or []) else None
        data = ds.map_batches(_tag, batch_format="pyarrow", fn_args=(key,)).materialize()
        if data.count() == 0:
            return (ray.data.from_arrow(_schema(sentence_columns).empty_table()),
                    ray.data.from_arrow(_schema(article_columns).empty_table()))
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
        scored = _score_articles(articles, ref, batch_size, actors, articles_per_batch, runtime_env,
                                 keep_fields, explain, backend).materialize()
        sentences = scored.map_batches(_select, batch_format="pyarrow", fn_args=(False, sentence_columns))
        summaries = scored.map_batches(_select, batch_format="pyarrow", fn_args=(True, article_columns))
        return sentences.materialize(), summaries.materialize()
    finally:
        options.preserve_order = preserve_order


def _article_tables(articles: Iterable[Article], rows: int) -> Iterator[pa.Table]:
    """``articles`` as tables of ``rows`` article rows, numbered in input order."""
    import pyarrow as pa

    schema = _schema(_INPUT_COLUMNS)
    chunk: list[dict[str, Any]] = []
    for seq, article in enumerate(articles):
        chunk.append(_input_row(seq, article))
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
    force: bool = False,
    batch_size: int = 256,
    articles_per_batch: int = ARTICLES_PER_BATCH,
    stdin_format: str = "text",
    stdin: BinaryIO | None = None,
    excel: bool = False,
    progress: Callable[[int], None] | None = None,
    keep_fields: Sequence[str] = (),
    folder_glob: str | None = None,
    on_error: Callable[[dict[str, Any]], None] | None = None,
    explain: int = 0,
    actors: int = 1,
    address: str | None = None,
    runtime_env: dict[str, Any] | None = None,
    backend: str | None = None,
) -> dict[str, int]:
    """Score inputs on Ray into ``out_dir``/``sentences.<fmt>`` and ``articles.<fmt>``; returns counts.

    The arguments and rows are those of :func:`stance.scoring.local.score_files` (the same
    reader, kernel and writers), plus ``actors``, ``address`` and ``runtime_env``; ``backend`` is
    the inference backend the actors use. This process
    reads the inputs into the object store and writes the outputs; the actors segment, predict
    and summarise. The rows stream back in input order and are written as they come: two files
    whatever the size of the cluster.

    Connects to ``address`` (or ``$RAY_ADDRESS``), else starts a local Ray on every core and
    stops it at the end; an already started Ray is used as it is. Returns
    ``{"articles", "sentences", "errors"}``. Raises ``FileExistsError`` when an output exists
    and ``force`` is false, and :class:`~stance.models.ModelNotFoundError` for a missing model,
    before Ray is started.
    """
    _check_sizes(batch_size, actors, articles_per_batch)
    out_dir = Path(out_dir)
    sentences_path, articles_path = check_outputs(out_dir, fmt, force)
    ray = _ray()
    ref = _model_ref(model, backend)  # a missing model or unknown backend fails here, before Ray starts
    articles_in = read_articles(inputs, text_field, id_field, stdin_format, stdin, folder_glob)
    started = _connect(address)
    try:
        counts = {"articles": 0, "sentences": 0, "errors": 0}
        out_dir.mkdir(parents=True, exist_ok=True)
        mark_scores(out_dir)
        sentence_columns, article_columns, _ = _row_columns(keep_fields, explain)
        with RowWriter(sentences_path, sentence_columns, fmt, excel) as sentence_out, \
                RowWriter(articles_path, article_columns, fmt, excel) as article_out:
            refs = [ray.put(table) for table in _article_tables(articles_in, articles_per_batch)]
            if not refs:
                return counts
            articles = _ordered(ray.data.from_arrow_refs(refs))
            scored = _score_articles(articles, ref, batch_size, actors, articles_per_batch, runtime_env, keep_fields,
                                     explain, backend)
            last = -1
            for table in scored.iter_batches(batch_format="pyarrow", batch_size=None):
                if not table.num_rows:
                    continue
                seqs = table[SEQ].to_numpy()
                if seqs[0] < last or (np.diff(seqs) < 0).any():  # preserve_order makes this impossible
                    raise RuntimeError("Ray Data returned rows out of input order")
                last = int(seqs[-1])
                sentences, summaries = _select(table, False, sentence_columns), _select(table, True, article_columns)
                # a block holds whole articles, so writing its sentences then its summaries keeps both files in order
                sentence_out.write_table(sentences)
                article_out.write_table(summaries)
                counts["sentences"] += sentences.num_rows
                counts["articles"] += summaries.num_rows
                counts["errors"] += summaries.num_rows - summaries["error"].null_count
                if on_error is not None and summaries["error"].null_count < summaries.num_rows:
                    for row in summaries.filter(summaries["error"].is_valid()).to_pylist():
                        on_error(row)
                if progress is not None:
                    for _ in range(summaries.num_rows):
                        progress(1)
        return counts
    finally:
        if started:
            ray.shutdown()
