"""Labels joined to sentences, and the checks every labelled file passes (the message names the row)."""

from __future__ import annotations

from pathlib import Path

from stance.data.files import read_csv
from stance.data.sentences import SentenceRow
from stance.labels import check_label


class AnnotationError(ValueError):
    """The annotations do not match the sentence table; the message names the sentence."""


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
