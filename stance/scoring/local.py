"""The single-machine scoring engine: inputs -> the one reader -> the kernel -> the writers.

Rows are written as they are made, so memory does not grow with the number of inputs; the
articles of one batch (``articles_per_batch``) have their sentences predicted together.

Two paths write the same bytes. The overlapped one (:mod:`stance.scoring.pipeline`) shares
segmenting and summarising with a worker process while this process predicts. It pays only when
a second core is idle and the input is large enough to repay the worker's start-up (a fresh
interpreter, about 0.2-0.4 s of CPU), so by default (``overlap=None``) it is taken when all of:

* the input holds more than :data:`PIPELINE_MIN_CHARACTERS` characters of article text (found
  by reading ahead at most that much);
* an idle core is likely: the CPUs this process may use, minus the 1-minute load average, are at
  least :data:`IDLE_CPUS_NEEDED` (on a busy machine, two processes only share one core);
* the system is POSIX and ``explain`` is off (the worker holds no model).

Otherwise the run is serial, in this process.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import chain
from pathlib import Path
from typing import Any, BinaryIO

from stance.scoring.kernel import PREDICT_BATCH, Kernel
from stance.scoring.pipeline import BatchSink, batches, score_overlapped
from stance.scoring.readers import Article, read_articles
from stance.scoring.writers import check_outputs, mark_scores

__all__ = ["ARTICLES_PER_BATCH", "IDLE_CPUS_NEEDED", "PIPELINE_MIN_CHARACTERS", "batches", "idle_cpus",
           "score_files", "write_scores"]

ARTICLES_PER_BATCH = 64
# about 2,000 news sentences: scoring them serially takes several times the worker's start-up
PIPELINE_MIN_CHARACTERS = 250_000
IDLE_CPUS_NEEDED = 0.5


def idle_cpus() -> float:
    """The CPUs this process may run on minus the 1-minute load average (negative when busy)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not every system can say
        cpus = os.cpu_count() or 1
    try:
        return cpus - os.getloadavg()[0]
    except OSError:  # pragma: no cover - no load average here
        return float(cpus - 1)


def _read_ahead(articles: Iterator[Article], characters: int) -> tuple[list[Article], bool]:
    """Articles from ``articles`` until they hold more than ``characters`` characters of text (then
    ``True``) or the input ends (then ``False``)."""
    head: list[Article] = []
    seen = 0
    for article in articles:
        head.append(article)
        seen += len(article.text)
        if seen > characters:
            return head, True
    return head, False


def write_scores(
    articles: Iterable[Article],
    kernel: Kernel,
    out_dir: str | Path,
    fmt: str = "jsonl",
    force: bool = False,
    progress: Callable[[int], None] | None = None,
    articles_per_batch: int = ARTICLES_PER_BATCH,
    excel: bool = False,
    on_error: Callable[[dict[str, Any]], None] | None = None,
    overlap: bool | None = None,
) -> dict[str, int]:
    """Score ``articles`` with ``kernel`` into ``out_dir``; returns ``{"articles", "sentences", "errors"}``.

    ``progress`` is called with 1 for each article written (a batch at a time); ``on_error``
    with each error article row. ``overlap``: ``None`` chooses by the module's rule, ``False``
    scores in this process only, ``True`` uses the worker process whenever it can (POSIX, no
    ``explain``); the files are the same either way. Raises ``FileExistsError`` when an output
    exists and ``force`` is false, ``ValueError`` for an unknown ``fmt``; a bad article never
    raises (it is an error row); an error of the ``articles`` iterable itself propagates, after
    the rows before it are written and the files closed.
    """
    if articles_per_batch < 1:
        raise ValueError(f"articles_per_batch must be at least 1, got {articles_per_batch}")
    paths = check_outputs(Path(out_dir), fmt, force)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    mark_scores(Path(out_dir))
    counts = {"articles": 0, "sentences": 0, "errors": 0}

    def written(n_articles: int, n_sentences: int, errors: list[dict[str, Any]]) -> None:
        counts["articles"] += n_articles
        counts["sentences"] += n_sentences
        counts["errors"] += len(errors)
        if on_error is not None:
            for row in errors:
                on_error(row)
        if progress is not None:
            for _ in range(n_articles):
                progress(1)

    stream = iter(articles)
    can_overlap = os.name == "posix" and not kernel.explain and overlap is not False
    if can_overlap and overlap is None:
        can_overlap = idle_cpus() >= IDLE_CPUS_NEEDED
        if can_overlap:
            head, large = _read_ahead(stream, PIPELINE_MIN_CHARACTERS)
            stream, can_overlap = chain(head, stream), large
    sink = BatchSink(kernel, *paths, fmt, excel)
    try:
        if can_overlap:
            score_overlapped(stream, kernel, sink, articles_per_batch, written)
        else:
            for batch in batches(stream, articles_per_batch):
                written(*sink.write(kernel.batch_rows(kernel.score(batch))))
    finally:
        sink.close()
    return counts


def score_files(
    inputs: Iterable[str | Path],
    out_dir: str | Path,
    model: str | Path | None = None,
    fmt: str = "jsonl",
    text_field: str = "text",
    id_field: str | None = "id",
    force: bool = False,
    batch_size: int = PREDICT_BATCH,
    articles_per_batch: int = ARTICLES_PER_BATCH,
    stdin_format: str = "text",
    stdin: BinaryIO | None = None,
    excel: bool = False,
    progress: Callable[[int], None] | None = None,
    keep_fields: Sequence[str] = (),
    folder_glob: str | None = None,
    on_error: Callable[[dict[str, Any]], None] | None = None,
    explain: int = 0,
    overlap: bool | None = None,
    backend: str | None = None,
) -> dict[str, int]:
    """Score files, folders, globs, JSONL/CSV/Parquet tables and ``-`` (stdin) on this machine.

    The arguments and rows are those of the Ray engine's ``score_files``. ``keep_fields``: fields
    of table inputs carried to both row kinds (as text; see :func:`stance.scoring.kernel.meta_columns`);
    ``excel``: CSV for spreadsheets (:class:`stance.scoring.writers.RowWriter`); ``folder_glob``:
    which files of a folder are articles (default: known suffixes); ``explain``: k > 0 adds each
    sentence's top-k explanation (:class:`~stance.scoring.kernel.Kernel`); ``overlap``: see
    :func:`write_scores`; ``backend``: the model's inference backend (:func:`stance.load`). Raises
    :class:`~stance.models.ModelNotFoundError` for a missing model, ``ValueError`` for a backend
    the model cannot run and ``FileExistsError`` for an existing output, before anything is read.
    """
    from stance.models.store import load

    check_outputs(Path(out_dir), fmt, force)
    loaded, ref = load(model, backend)
    kernel = Kernel(loaded, ref.name, ref.sha256, batch_size, keep_fields, explain)
    articles = read_articles(inputs, text_field, id_field, stdin_format, stdin, folder_glob)
    return write_scores(articles, kernel, out_dir, fmt, force, progress, articles_per_batch, excel, on_error,
                        overlap)
