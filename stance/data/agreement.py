"""Inter-annotator agreement between two labelling passes, and adjudication checks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from stance.data.annotations import AnnotationError
from stance.data.files import read_csv
from stance.labels import LABELS, check_label


@dataclass(frozen=True)
class Agreement:
    """Cohen's kappa and raw agreement of two passes over the same ``n`` items."""

    name: str
    n: int
    kappa: float
    raw_agreement: float
    disagreements: int

    def as_dict(self) -> dict[str, float | int | str]:
        return {
            "name": self.name,
            "n": self.n,
            "kappa": round(self.kappa, 4),
            "raw_agreement": round(self.raw_agreement, 4),
            "disagreements": self.disagreements,
        }


def _labels_by_id(rows: list[dict[str, str]], column: str, where: str) -> dict[str, str]:
    return {row["id"]: check_label(row[column], f"{row['id']} in {where}") for row in rows}


def compare_passes(
    name: str,
    first: dict[str, str],
    second: dict[str, str],
    adjudication: list[dict[str, str]],
    final: dict[str, str],
) -> Agreement:
    """Kappa between two passes; checks that every disagreement was adjudicated.

    ``adjudication`` rows carry ``id``, ``final`` and ``reason``; the adjudicated label must
    equal the label in ``final`` (the shipped annotations). Raises :class:`AnnotationError`
    naming the item when the passes cover different items or an adjudication is missing or
    inconsistent.
    """
    from sklearn.metrics import cohen_kappa_score

    if set(first) != set(second):
        odd = sorted(set(first) ^ set(second))
        raise AnnotationError(f"{name}: passes differ in items, e.g. {odd[0]}")
    ids = sorted(first)
    decided = {row["id"]: row for row in adjudication}
    disagreements = [i for i in ids if first[i] != second[i]]
    for item in disagreements:
        row = decided.get(item)
        if row is None or not (row.get("reason") or "").strip():
            raise AnnotationError(f"{name}: disagreement on {item} has no adjudication with a reason")
        if row["final"] != final.get(item):
            raise AnnotationError(
                f"{name}: {item} adjudicated as {row['final']!r} but shipped as {final.get(item)!r}"
            )
    kappa = cohen_kappa_score([first[i] for i in ids], [second[i] for i in ids], labels=list(LABELS))
    return Agreement(name, len(ids), float(kappa), 1 - len(disagreements) / len(ids), len(disagreements))


def agreement_from_files(
    name: str, first: Path, second: Path, adjudication: Path, final: dict[str, str], column: str = "label"
) -> Agreement:
    """:func:`compare_passes` over CSV files with ``id,label`` (or ``column``) rows."""
    return compare_passes(
        name,
        _labels_by_id(read_csv(first), column, first.name),
        _labels_by_id(read_csv(second), "label", second.name),
        read_csv(adjudication),
        final,
    )
