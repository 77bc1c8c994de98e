"""The single-process scoring engine: inputs -> the one reader -> the kernel -> the writers.

Rows are written as they are made, so memory does not grow with the number of inputs; the
articles of one batch (``articles_per_batch``) have their sentences predicted together.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from stance.scoring.kernel import Kernel
from stance.scoring.readers import Article, read_articles
from stance.scoring.writers import RowWriter, check_outputs, mark_scores

ARTICLES_PER_BATCH = 64


def batches(articles: Iterable[Article], size: int) -> Iterator[list[Article]]:
    """``articles`` in lists of ``size`` (the last may be shorter)."""
    batch: list[Article] = []
    for article in articles:
        batch.append(article)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


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
) -> dict[str, int]:
    """Score ``articles`` with ``kernel`` into ``out_dir``; returns ``{"articles", "sentences", "errors"}``.

    ``progress`` is called with 1 after each article is written; ``on_error`` with each error
    article row. Raises
    ``FileExistsError`` when an output exists and ``force`` is false, ``ValueError`` for an
    unknown ``fmt``; a bad article never raises (it is an error row).
    """
    if articles_per_batch < 1:
        raise ValueError(f"articles_per_batch must be at least 1, got {articles_per_batch}")
    sentences_path, articles_path = check_outputs(Path(out_dir), fmt, force)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    mark_scores(Path(out_dir))
    counts = {"articles": 0, "sentences": 0, "errors": 0}
    with RowWriter(sentences_path, kernel.sentence_columns, fmt, excel) as sentence_out, \
            RowWriter(articles_path, kernel.article_columns, fmt, excel) as article_out:
        for batch in batches(articles, articles_per_batch):
            for sentence_rows, article_row in kernel.rows(batch):
                sentence_out.write_rows(sentence_rows)
                article_out.write_rows((article_row,))
                counts["articles"] += 1
                counts["sentences"] += len(sentence_rows)
                if article_row["error"] is not None:
                    counts["errors"] += 1
                    if on_error is not None:
                        on_error(article_row)
                if progress is not None:
                    progress(1)
    return counts


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
) -> dict[str, int]:
    """Score files, folders, globs, JSONL/CSV/Parquet tables and ``-`` (stdin) in this process.

    The arguments and rows are those of the Ray engine's ``score_files``. ``keep_fields``: fields
    of table inputs carried to both row kinds (as text; see :func:`stance.scoring.kernel.meta_columns`);
    ``excel``: CSV for spreadsheets (:class:`stance.scoring.writers.RowWriter`); ``folder_glob``:
    which files of a folder are articles (default: known suffixes); ``explain``: k > 0 adds each
    sentence's top-k explanation (:class:`~stance.scoring.kernel.Kernel`). Raises
    :class:`~stance.models.ModelNotFoundError` for a missing model and ``FileExistsError``
    for an existing output, before anything is read.
    """
    from stance.models.store import load

    check_outputs(Path(out_dir), fmt, force)
    loaded, ref = load(model)
    kernel = Kernel(loaded, ref.name, ref.sha256, batch_size, keep_fields, explain)
    articles = read_articles(inputs, text_field, id_field, stdin_format, stdin, folder_glob)
    return write_scores(articles, kernel, out_dir, fmt, force, progress, articles_per_batch, excel, on_error)
