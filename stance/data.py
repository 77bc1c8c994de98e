"""The sentence table, annotations, near-duplicate groups and the loaders.

Three sources of labelled sentences:

* ``seed``: every sentence of ``seeds/*.txt``; labels in ``data/annotations.csv``;
* ``supplement``: own-words training sentences in ``data/supplement/supplement.csv``;
* ``challenge``: an independent evaluation set in ``data/challenge/challenge.csv``.

The build step (:func:`build`) regenerates ``data/sentences.csv`` from the seeds, joins
the annotations and refuses to continue if a sentence lacks a label, a label is unknown, or
an annotation points at a sentence that no longer exists.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stance import paths
from stance.labels import LABELS, check_label
from stance.segment import segment
from stance.similarity import group_ids

if TYPE_CHECKING:  # pragma: no cover
    import datasets
    import pandas as pd

COLUMNS = ("id", "text", "label", "doc", "group", "source")


class AnnotationError(ValueError):
    """The annotations do not match the sentence table; the message names the sentence."""


@dataclass(frozen=True)
class SentenceRow:
    """One seed sentence: a stable id (document stem + index), offsets and its near-duplicate group."""

    id: str
    doc: str
    index: int
    start: int
    end: int
    text: str
    group: str


def sentence_id(doc: str, index: int) -> str:
    return f"{doc}-{index:03d}"


def build_sentence_table(seeds: Path | None = None) -> list[SentenceRow]:
    """Segment every ``*.txt`` in ``seeds`` (default: the project's) into :class:`SentenceRow`.

    Raises ``FileNotFoundError`` if the folder holds no ``.txt`` file.
    """
    folder = Path(seeds) if seeds is not None else paths.seeds_dir()
    files = sorted(folder.glob("*.txt"))
    if not files:
        raise FileNotFoundError(f"no seed .txt files in {folder}")
    pieces: list[tuple[str, int, Any]] = []
    for file in files:
        for index, sentence in enumerate(segment(file.read_text(encoding="utf-8"))):
            pieces.append((file.stem, index, sentence))
    groups = group_ids([s.text for _, _, s in pieces])
    return [
        SentenceRow(sentence_id(doc, i), doc, i, s.start, s.end, s.text, f"g{group:03d}")
        for (doc, i, s), group in zip(pieces, groups)
    ]


def read_csv(path: Path) -> list[dict[str, str]]:
    """Rows of a UTF-8 CSV file as dicts. Raises ``FileNotFoundError`` naming the file."""
    if not path.exists():
        raise FileNotFoundError(f"missing data file: {path}")
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def write_csv(path: Path, rows: Iterable[dict[str, Any]], fields: Iterable[str]) -> None:
    """Write ``rows`` to ``path`` as UTF-8 CSV with the given column order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(fields), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def join_annotations(
    table: list[SentenceRow], annotations: list[dict[str, str]]
) -> list[dict[str, str]]:
    """Attach each annotation's label to its sentence; every check names the sentence.

    Raises :class:`AnnotationError` when an annotation has no sentence, its text no longer
    matches the sentence, a sentence is annotated twice or not at all, and
    :class:`~stance.labels.UnknownLabelError` for a label outside :data:`LABELS`.
    """
    by_id = {row.id: row for row in table}
    labelled: dict[str, dict[str, str]] = {}
    for annotation in annotations:
        sid = annotation.get("id", "")
        if sid not in by_id:
            raise AnnotationError(f"annotation {sid!r} points at a sentence that no longer exists")
        if sid in labelled:
            raise AnnotationError(f"sentence {sid} is annotated more than once")
        if annotation.get("text") and annotation["text"] != by_id[sid].text:
            raise AnnotationError(
                f"sentence {sid} changed since it was annotated: "
                f"{annotation['text'][:60]!r} is now {by_id[sid].text[:60]!r}"
            )
        check_label(annotation.get("label"), sid)
        labelled[sid] = annotation
    missing = [row.id for row in table if row.id not in labelled]
    if missing:
        raise AnnotationError(f"sentence {missing[0]} has no label ({len(missing)} unlabelled)")
    return [
        {
            "id": row.id,
            "text": row.text,
            "label": labelled[row.id]["label"],
            "doc": row.doc,
            "group": row.group,
            "source": "seed",
            "note": labelled[row.id].get("note", ""),
        }
        for row in table
    ]


def check_labelled_file(path: Path, id_prefix: str = "") -> list[dict[str, str]]:
    """Rows of a labelled CSV (supplement or challenge) after the seed annotations' checks.

    Every row needs a unique ``id``, non-empty ``text`` and a known ``label``; raises
    :class:`AnnotationError` or :class:`~stance.labels.UnknownLabelError` naming the row.
    """
    rows = read_csv(path)
    seen: set[str] = set()
    for number, row in enumerate(rows, start=2):
        sid = row.get("id") or f"{path.name} line {number}"
        if not row.get("id"):
            raise AnnotationError(f"{sid}: row has no id")
        if sid in seen:
            raise AnnotationError(f"{sid}: id used twice in {path.name}")
        if id_prefix and not sid.startswith(id_prefix):
            raise AnnotationError(f"{sid}: ids in {path.name} must start with {id_prefix!r}")
        if not (row.get("text") or "").strip():
            raise AnnotationError(f"{sid}: empty text in {path.name}")
        check_label(row.get("label"), sid)
        seen.add(sid)
    return rows


def seed_rows(data: Path | None = None, seeds: Path | None = None) -> list[dict[str, str]]:
    """Labelled seed sentences: the sentence table joined with ``data/annotations.csv``.

    Each row carries the ``context`` it has in its article (:func:`stance.context.sentence_contexts`).
    """
    from stance.context import sentence_contexts

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
    folder = Path(data) if data is not None else paths.data_dir()
    rows = check_labelled_file(folder / "contrast" / "contrast.csv", "con")
    return [{**row, "doc": "contrast", "source": "contrast", "context": ""} for row in rows]


def contrast_test_rows(data: Path | None = None) -> list[dict[str, str]]:
    """The independent contrast test set (evaluation only), in contrast groups (``group``)."""
    folder = Path(data) if data is not None else paths.data_dir()
    rows = check_labelled_file(folder / "contrast_test" / "contrast_test.csv", "ct")
    return [{**row, "doc": "contrast_test", "source": "contrast_test", "context": ""} for row in rows]


def article_rows(name: str = "articles", data: Path | None = None) -> list[dict[str, Any]]:
    """Sentence rows of the mini-articles (``articles``, training) or the article test set
    (``article_test``), each with its ``context``; see :func:`stance.articles.load_set`.

    Training sentences listed in ``articles/leakage.csv`` (near-duplicates of a test sentence,
    found by ``experiments/check_leakage.py``) are left out; their neighbours keep them as context.
    """
    from stance.articles import load_set

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


def write_sentence_table(rows: list[SentenceRow], path: Path) -> None:
    write_csv(path, (asdict(r) for r in rows), SentenceRow.__dataclass_fields__)


def summary_json(summary: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
