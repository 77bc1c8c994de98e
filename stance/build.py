"""The dataset build: regenerate the sentence table, join and check every label set, summarise."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from stance import paths
from stance.agreement import Agreement, agreement_from_files, compare_passes
from stance.data import (
    build_sentence_table,
    challenge_rows,
    join_annotations,
    label_counts,
    read_csv,
    summary_json,
    supplement_rows,
    write_sentence_table,
)
from stance.labels import LABELS


def _written_set_agreement(name: str, rows: list[dict[str, str]], folder: Path) -> Agreement:
    """Writer's label (pass 1) vs a blind second pass, for the supplement or challenge set."""
    return compare_passes(
        name,
        {r["id"]: r["written_label"] for r in rows},
        {r["id"]: r["label"] for r in read_csv(folder / "pass2_blind.csv")},
        read_csv(folder / "adjudication.csv"),
        {r["id"]: r["label"] for r in rows},
    )


def build(data: Path | None = None, seeds: Path | None = None) -> dict[str, Any]:
    """Rebuild ``data/sentences.csv`` and ``data/summary.json`` from the seeds and the labels.

    Returns the summary: counts per label and per document, near-duplicate groups (and how
    many span documents), and Cohen's kappa of every double-labelled set. Raises
    :class:`~stance.data.AnnotationError` (naming the sentence) when a label is missing,
    unknown, or points at a sentence that no longer exists.
    """
    data = Path(data) if data is not None else paths.data_dir()
    table = build_sentence_table(seeds)
    write_sentence_table(table, data / "sentences.csv")
    rows = join_annotations(table, read_csv(data / "annotations.csv"))
    final = {r["id"]: r["label"] for r in rows}
    passes = data / "passes"
    agreements = [
        agreement_from_files(
            "seeds", passes / "seed_pass1.csv", passes / "seed_pass2.csv", passes / "seed_adjudication.csv", final
        )
    ]
    docs_of_group: dict[str, set[str]] = {}
    for row in table:
        docs_of_group.setdefault(row.group, set()).add(row.doc)
    group_sizes = Counter(row.group for row in table)
    summary: dict[str, Any] = {
        "sentences": len(rows),
        "documents": len({r.doc for r in table}),
        "labels": dict(Counter(r["label"] for r in rows)),
        "labels_by_document": label_counts(rows),
        "groups": len(group_sizes),
        "groups_with_copies": sum(1 for size in group_sizes.values() if size > 1),
        "groups_spanning_documents": sum(1 for docs in docs_of_group.values() if len(docs) > 1),
        "cross_document_groups": {
            g: sorted(d) for g, d in sorted(docs_of_group.items()) if len(d) > 1
        },
    }
    for name, loader in (("supplement", supplement_rows), ("challenge", challenge_rows)):
        folder = data / name
        if (folder / f"{name}.csv").exists():
            extra = loader(data)
            summary[name] = {
                "sentences": len(extra),
                "labels": dict(Counter(r["label"] for r in extra)),
                "families": len({r["family"] for r in extra}),
            }
            agreements.append(_written_set_agreement(name, extra, folder))
    summary["agreement"] = [a.as_dict() for a in agreements]
    summary_json(summary, data / "summary.json")
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """A plain-text report of :func:`build`'s summary."""
    lines = [f"{summary['sentences']} seed sentences in {summary['documents']} documents"]
    header = f"{'document':28}" + "".join(f"{label:>16}" for label in LABELS)
    lines += [header, "-" * len(header)]
    for doc, counts in summary["labels_by_document"].items():
        lines.append(f"{doc:28}" + "".join(f"{counts[label]:>16}" for label in LABELS))
    lines.append(f"{'all':28}" + "".join(f"{summary['labels'].get(label, 0):>16}" for label in LABELS))
    lines.append(
        f"near-duplicate groups: {summary['groups']} ({summary['groups_with_copies']} with copies, "
        f"{summary['groups_spanning_documents']} spanning documents)"
    )
    for name in ("supplement", "challenge"):
        if name in summary:
            part = summary[name]
            counts = ", ".join(f"{label} {part['labels'].get(label, 0)}" for label in LABELS)
            lines.append(f"{name}: {part['sentences']} sentences ({counts}), {part['families']} families")
    for agreement in summary["agreement"]:
        lines.append(
            f"agreement {agreement['name']}: Cohen's kappa {agreement['kappa']:.3f} over {agreement['n']} items "
            f"({agreement['disagreements']} disagreements, all adjudicated)"
        )
    return "\n".join(lines)
