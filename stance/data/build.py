"""The dataset build: regenerate the sentence table, join and check every label set, summarise."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from stance import paths
from stance.data.agreement import Agreement, agreement_from_files, compare_passes
from stance.data.annotations import AnnotationError, join_annotations
from stance.data.articles import build_set, render, written_articles
from stance.data.files import read_csv, summary_json
from stance.data.loaders import challenge_rows, contrast_rows, contrast_test_rows, label_counts, supplement_rows
from stance.data.sentences import build_sentence_table, write_sentence_table
from stance.labels import LABELS


def _written_set_agreement(name: str, rows: list[dict[str, str]], folder: Path) -> Agreement:
    """Writer's label (pass 1) vs a blind second pass, over the rows the set keeps (rows dropped by
    the leakage check were labelled twice too, but are no longer part of it)."""
    kept = {r["id"] for r in rows}
    return compare_passes(
        name,
        {r["id"]: r["written_label"] for r in rows},
        {r["id"]: r["label"] for r in read_csv(folder / "pass2_blind.csv") if r["id"] in kept},
        read_csv(folder / "adjudication.csv"),
        {r["id"]: r["label"] for r in rows},
    )


FROZEN_FILE = "FROZEN"


def check_frozen(folder: Path) -> str:
    """sha256 of the frozen contrast test set; raises ``ValueError`` if it changed since it was frozen.

    ``FROZEN`` holds the hash recorded when the set was frozen (before any model was trained
    against it); a missing ``FROZEN`` means the set is not frozen yet and is returned as is.
    """
    from stance.models.hf import file_sha256

    digest = file_sha256(folder / "contrast_test.csv")
    marker = folder / FROZEN_FILE
    if marker.exists() and marker.read_text().split()[0] != digest:
        raise ValueError(f"{folder / 'contrast_test.csv'} changed after it was frozen (sha256 {digest}, "
                         f"recorded {marker.read_text().split()[0]})")
    return digest


def build_article_set(name: str, data: Path) -> tuple[dict[str, Any], Agreement | None]:
    """Build a mini-article set (:func:`stance.data.articles.build_set`) with its adjudicated labels,
    and the agreement of the writer's labels with the blind second pass over the sentences it covers."""
    folder = data / name
    adjudication = read_csv(folder / "adjudication.csv") if (folder / "adjudication.csv").exists() else []
    overrides = {(row["id"].split(":")[0], int(row["id"].split(":")[1])): row["final"] for row in adjudication}
    counts = build_set(name, data, overrides)
    if not (folder / "pass2_blind.csv").exists():
        return counts, None
    second = {f"{r['doc']}:{r['index']}": r["label"] for r in read_csv(folder / "pass2_blind.csv")}
    first, final = {}, {}
    for article in written_articles(name, data):
        for index, span in enumerate(render(article)[1]):
            key = f"{article['id']}:{index}"
            if key in second:
                first[key] = span.label
                final[key] = overrides.get((article["id"], index), span.label)
    counts["blind_pass_sentences"] = len(second)
    if (folder / "pass2_sides.csv").exists():
        written = {a["id"]: a["side"] for a in written_articles(name, data)}
        blind = {r["doc"]: r["side"] for r in read_csv(folder / "pass2_sides.csv")}
        decided = {r["id"]: r for r in (read_csv(folder / "side_adjudication.csv")
                                         if (folder / "side_adjudication.csv").exists() else [])}
        for doc, side in blind.items():
            if side != written[doc] and (doc not in decided or decided[doc]["final"] != written[doc]):
                raise AnnotationError(f"{name}: article side of {doc} disagrees ({written[doc]} / {side}) and has no "
                                      "adjudication keeping the written side")
        from sklearn.metrics import cohen_kappa_score

        docs = sorted(blind)
        counts["side_agreement"] = {
            "articles": len(docs), "agree": sum(blind[d] == written[d] for d in docs),
            "kappa": round(float(cohen_kappa_score([written[d] for d in docs], [blind[d] for d in docs])), 4)}
    return counts, compare_passes(name, first, second, adjudication, final)


def build(data: Path | None = None, seeds: Path | None = None) -> dict[str, Any]:
    """Rebuild ``data/sentences.csv`` and ``data/summary.json`` from the seeds and the labels.

    Returns the summary: counts per label and per document, near-duplicate groups (and how
    many span documents), and Cohen's kappa of every double-labelled set. Raises
    :class:`~stance.data.annotations.AnnotationError` (naming the sentence) when a label is missing,
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
    loaders = (("supplement", supplement_rows), ("challenge", challenge_rows), ("contrast", contrast_rows),
               ("contrast_test", contrast_test_rows))
    for name, loader in loaders:
        folder = data / name
        if (folder / f"{name}.csv").exists():
            extra = loader(data)
            summary[name] = {
                "sentences": len(extra),
                "labels": dict(Counter(r["label"] for r in extra)),
                "families": len({r["family"] for r in extra if r.get("family")}),
            }
            if "group" in extra[0] and name.startswith("contrast"):
                summary[name]["groups"] = len({r["group"] for r in extra})
            if (folder / "pass2_blind.csv").exists():
                agreements.append(_written_set_agreement(name, extra, folder))
    if (data / "contrast_test" / "contrast_test.csv").exists():
        summary["contrast_test"]["sha256"] = check_frozen(data / "contrast_test")
    for name in ("articles", "article_test"):
        if any((data / name / "written").glob("*.json")):
            summary[name], agreement = build_article_set(name, data)
            agreements += [agreement] if agreement else []
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
    for name in ("supplement", "challenge", "contrast", "contrast_test", "articles", "article_test"):
        if name in summary:
            part = summary[name]
            counts = ", ".join(f"{label} {part['labels'].get(label, 0)}" for label in LABELS)
            size = (f"{part['articles']} articles, " if "articles" in part else "") + f"{part['sentences']} sentences"
            extra = f", {part['groups']} groups" if "groups" in part else ""
            lines.append(f"{name}: {size} ({counts}){extra}")
    for agreement in summary["agreement"]:
        lines.append(
            f"agreement {agreement['name']}: Cohen's kappa {agreement['kappa']:.3f} over {agreement['n']} items "
            f"({agreement['disagreements']} disagreements, all adjudicated)"
        )
    return "\n".join(lines)
