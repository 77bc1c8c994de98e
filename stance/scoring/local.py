"""The single-process scoring engine: inputs -> the one reader -> the kernel -> the writers.

Rows are written as they are made, so memory does not grow with the number of inputs; the
articles of one batch (``articles_per_batch``) have their sentences predicted together.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from stance.scoring.kernel import ARTICLE_COLUMNS, SENTENCE_COLUMNS, Kernel
from stance.scoring.readers import Article, read_articles
from stance.scoring.writers import RowWriter, check_outputs

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
    csv_bom: bool = False,
) -> dict[str, int]:
    """Score ``articles`` with ``kernel`` into ``out_dir``; returns ``{"articles", "sentences", "errors"}``.

    ``progress`` is called with the number of articles finished after each batch. Raises
    ``FileExistsError`` when an output exists and ``force`` is false, ``ValueError`` for an
    unknown ``fmt``; a bad article never raises (it is an error row).
    """
    if articles_per_batch < 1:
        raise ValueError(f"articles_per_batch must be at least 1, got {articles_per_batch}")
    sentences_path, articles_path = check_outputs(Path(out_dir), fmt, force)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    counts = {"articles": 0, "sentences": 0, "errors": 0}
    with RowWriter(sentences_path, SENTENCE_COLUMNS, fmt, csv_bom) as sentence_out, \
            RowWriter(articles_path, ARTICLE_COLUMNS, fmt, csv_bom) as article_out:
        for batch in batches(articles, articles_per_batch):
            for sentence_rows, article_row in kernel.rows(batch):
                sentence_out.write_rows(sentence_rows)
                article_out.write_rows((article_row,))
                counts["sentences"] += len(sentence_rows)
                counts["errors"] += article_row["error"] is not None
            counts["articles"] += len(batch)
            if progress is not None:
                progress(len(batch))
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
    csv_bom: bool = False,
    progress: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Score files, folders, globs, JSONL/CSV/Parquet tables and ``-`` (stdin) in this process.

    The arguments and rows are those of the Ray engine's ``score_files``. Raises
    :class:`~stance.models.ModelNotFoundError` for a missing model and ``FileExistsError``
    for an existing output, before anything is read.
    """
    from stance.models.store import load

    check_outputs(Path(out_dir), fmt, force)
    loaded, ref = load(model)
    kernel = Kernel(loaded, ref.name, ref.sha256, batch_size)
    articles = read_articles(inputs, text_field, id_field, stdin_format, stdin)
    return write_scores(articles, kernel, out_dir, fmt, force, progress, articles_per_batch, csv_bom)
