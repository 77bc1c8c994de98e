"""The three stance labels in their one fixed order, and label checks."""

from __future__ import annotations

# Order of ../shared/LABELS.md; every probability vector, table and file uses it.
LABELS: tuple[str, ...] = ("pro-scanning", "pro-encryption", "neutral")
LABEL_TO_ID: dict[str, int] = {label: i for i, label in enumerate(LABELS)}
STANCE_LABELS: tuple[str, ...] = ("pro-scanning", "pro-encryption")


class UnknownLabelError(ValueError):
    """A label that is not one of :data:`LABELS`."""


def check_label(label: object, where: str = "") -> str:
    """Return ``label`` if it is one of :data:`LABELS`.

    Raises :class:`UnknownLabelError` naming ``where`` (e.g. a sentence id) otherwise.
    """
    if label not in LABEL_TO_ID:
        place = f" for {where}" if where else ""
        raise UnknownLabelError(f"unknown label {label!r}{place}; expected one of {list(LABELS)}")
    return str(label)
