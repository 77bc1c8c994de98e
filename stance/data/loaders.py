"""Every labelled set as rows (dicts), the training sets beside the seeds, and their hash.

Three sources of labelled sentences:

* ``seed``: every sentence of ``seeds/*.txt``; labels in ``data/annotations.csv``;
* ``supplement``: own-words training sentences in ``data/supplement/supplement.csv``;
* ``challenge``: an independent evaluation set in ``data/challenge/challenge.csv``.

The build step (:func:`stance.data.build.build`) regenerates ``data/sentences.csv`` from the seeds, joins
the annotations and refuses to continue if a sentence lacks a label, a label is unknown, or
an annotation points at a sentence that no longer exists.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stance import paths
from stance.context import sentence_contexts
from stance.data.annotations import check_labelled_file, join_annotations
from stance.data.articles import load_set
from stance.data.files import read_csv
from stance.data.sentences import build_sentence_table
from stance.labels import LABELS

if TYPE_CHECKING:  # pragma: no cover
    import datasets
    import pandas as pd

COLUMNS = ("id", "text", "label", "doc", "group", "source")


def seed_rows(data: Path | None = None, seeds: Path | None = None) -> list[dict[str, str]]:
    """Labelled seed sentences: the sentence table joined with ``data/annotations.csv``.

    Each row carries the ``context`` it has in its article (:func:`stance.context.sentence_contexts`).
    """
    folder = Path(data) if data is not None else paths.data_dir()
    table = build_sentence_table(seeds)
    rows = join_annotations(table, read_csv(folder / "annotations.csv"))
    seed_folder = Path(seeds) if seeds is not None else paths.seeds_dir()
    contexts: dict[str, str] = {}
    for doc in dict.fromkeys(r.doc for r in table):
        text = (seed_folder / f"{doc}.txt").read_text(encoding="utf-8")
        mine = [r for r in table if r.doc == doc]
        contexts.update(zip((r.id for r in mine), sentence_contexts(text, mine)))
    return [{**row, "context": contexts[row["id"]]} for row in rows]


def supplement_rows(data: Path | None = None) -> list[dict[str, str]]:
    """Own-words training sentences; each is its own group, in the document ``supplement``."""
    folder = Path(data) if data is not None else paths.data_dir()
    rows = check_labelled_file(folder / "supplement" / "supplement.csv", "sup")
    return [{**row, "doc": "supplement", "group": row["id"], "source": "supplement"} for row in rows]


def challenge_rows(data: Path | None = None) -> list[dict[str, str]]:
    """The independent challenge set (evaluation only)."""
    folder = Path(data) if data is not None else paths.data_dir()
    rows = check_labelled_file(folder / "challenge" / "challenge.csv", "ch")
    return [{**row, "doc": "challenge", "group": row["id"], "source": "challenge"} for row in rows]


def contrast_rows(data: Path | None = None) -> list[dict[str, str]]:
    """Own-words contrast groups (training only): sentences of one ``group`` share their topic
    words and differ in label; a group is never split across folds."""
    return _contrast_file(Path(data) if data is not None else paths.data_dir(), "contrast.csv")


def _contrast_file(data: Path, relative: str) -> list[dict[str, str]]:
    rows = check_labelled_file(data / "contrast" / relative, "con")
    return [{**row, "doc": "contrast", "source": "contrast", "context": ""} for row in rows]


def held_back_contrast_rows(data: Path | None = None) -> list[dict[str, str]]:
    """Contrast groups written and blind-labelled like :func:`contrast_rows` but kept out of
    training (``data/contrast/held_back/``: adding them lowered the default baseline's held-out
    figures, with CIs that reach zero, while the transformer's contrast figures rose within theirs;
    by the selection rule's score no variant beat the shipped set; ``experiments/contrast_parts.py``
    measures it). Same columns as the training set."""
    return _contrast_file(Path(data) if data is not None else paths.data_dir(), "held_back/contrast_held_back.csv")


def contrast_test_rows(data: Path | None = None) -> list[dict[str, str]]:
    """The independent contrast test set (evaluation only), in contrast groups (``group``)."""
    folder = Path(data) if data is not None else paths.data_dir()
    rows = check_labelled_file(folder / "contrast_test" / "contrast_test.csv", "ct")
    return [{**row, "doc": "contrast_test", "source": "contrast_test", "context": ""} for row in rows]


def article_rows(name: str = "articles", data: Path | None = None) -> list[dict[str, Any]]:
    """Sentence rows of the mini-articles (``articles``, training) or the article test set
    (``article_test``), each with its ``context``; see :func:`stance.data.articles.load_set`.

    Training sentences listed in ``articles/leakage.csv`` (near-duplicates of a test sentence,
    found by ``experiments/check_leakage.py``) are left out; their neighbours keep them as context.
    """
    rows = load_set(name, data)[0]
    leakage = (Path(data) if data is not None else paths.data_dir()) / name / "leakage.csv"
    if leakage.exists():
        leaked = {row["id"] for row in read_csv(leakage)}
        rows = [row for row in rows if row["id"] not in leaked]
    return rows


# which own-words sets join the seeds in training; the seed evaluation never tests on them
EXTRA_SETS: dict[str, tuple[str, ...]] = {
    "none": (),
    "supplement": ("supplement",),
    "all": ("supplement", "contrast", "articles"),
}


def extra_training_rows(which: str = "all", data: Path | None = None) -> list[dict[str, Any]]:
    """Training rows beside the seeds: ``none``, the ``supplement``, or ``all`` own-words sets
    (supplement, contrast groups, mini-articles). Raises ``ValueError`` for another name and
    ``FileNotFoundError`` naming a set that has not been built."""
    if which not in EXTRA_SETS:
        raise ValueError(f"unknown training set {which!r}; known: {sorted(EXTRA_SETS)}")
    loaders = {
        "supplement": lambda: [{**r, "context": ""} for r in supplement_rows(data)],
        "contrast": lambda: contrast_rows(data),
        "articles": lambda: article_rows("articles", data),
    }
    rows: list[dict[str, Any]] = []
    for name in EXTRA_SETS[which]:
        rows += loaders[name]()
    return rows


def labelled_rows(include_supplement: bool = False) -> list[dict[str, str]]:
    """Seed rows, plus the supplement when ``include_supplement`` (training data only)."""
    rows = seed_rows()
    return rows + supplement_rows() if include_supplement else rows


def load_frame(include_supplement: bool = False) -> "pd.DataFrame":
    """The labelled data as a pandas DataFrame with columns ``id text label doc group source``."""
    import pandas as pd

    return pd.DataFrame(labelled_rows(include_supplement), columns=list(COLUMNS))


def load_dataset(include_supplement: bool = False) -> "datasets.Dataset":
    """The labelled data as a ``datasets.Dataset`` with ``id text label doc group source``."""
    import datasets

    rows = labelled_rows(include_supplement)
    return datasets.Dataset.from_dict({c: [r[c] for r in rows] for c in COLUMNS})


def data_hash(texts: Iterable[str], labels: Iterable[str]) -> str:
    """sha256 over the (text, label) pairs in order: identifies the training data of a model."""
    digest = hashlib.sha256()
    for text, label in zip(texts, labels, strict=True):
        digest.update(f"{text}\t{label}\n".encode())
    return digest.hexdigest()


def label_counts(rows: Iterable[dict[str, str]], by: str = "doc") -> dict[str, dict[str, int]]:
    """``{by-value: {label: count}}`` with every label present (zero when absent)."""
    counts: dict[str, dict[str, int]] = {}
    for row in rows:
        bucket = counts.setdefault(row[by], {label: 0 for label in LABELS})
        bucket[row["label"]] += 1
    return counts
