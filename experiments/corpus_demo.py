"""The corpus view of the mini-articles (which carry an outlet, a date and a register): score them
with the default model, then group by outlet, by month and by register.

Writes experiments/results/corpus_demo/: input.jsonl (the articles with their metadata),
scores/articles.jsonl (the article rows; the sentence rows are not kept), and by_outlet/,
by_month/, by_register/ (each: corpus.csv/.md/.json, two PNGs, corpus.html). Prints the tables.
"""

import inspect
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from stance import paths
from stance.aggregate import article_label
from stance.labels import LABELS
from stance.scoring.corpus import write_corpus
from stance.scoring.local import score_files

META = ["outlet", "date", "register"]
VIEWS = {"by_outlet": "outlet", "by_month": "date:month", "by_register": "register"}


def build_input(target: Path) -> int:
    """One JSONL row per mini-article: id, text, outlet, date, register."""
    articles = paths.project_root() / "data" / "articles"
    table = pd.read_csv(articles / "articles.csv", dtype=str, keep_default_na=False)
    with target.open("w", encoding="utf-8") as out:
        for r in table.to_dict(orient="records"):
            text = (articles / "texts" / f"{r['id']}.txt").read_text(encoding="utf-8")
            out.write(json.dumps({"id": r["id"], "text": text, **{k: r[k] for k in META}}, ensure_ascii=False) + "\n")
    return len(table)


def complete_rows(rows: list[dict], metadata: dict[str, dict]) -> list[dict]:
    """Rows as the corpus view reads them, on a checkout whose `stance score` predates issue 18's
    article columns and --keep-fields: the metadata joined back by doc_id, and the summary columns
    computed by their definitions (stance index = mean P(enc) - mean P(scan), which is
    (sum p_enc - sum p_scan) / n; engagement = share_enc + share_scan; the article label by
    stance.aggregate.article_label). Rows that already have them are left as they are."""
    for row in rows:
        for key in META:
            row.setdefault(key, metadata.get(str(row["doc_id"]), {}).get(key))
        if "stance_index" not in row and row.get("error") is None:
            row["stance_index"] = row["mean_p_pro-encryption"] - row["mean_p_pro-scanning"]
            row["engagement"] = row["share_pro-encryption"] + row["share_pro-scanning"]
            row["article_label"] = article_label(np.array([row[f"n_{label}"] for label in LABELS]))
        for key in ("stance_index", "engagement", "article_label"):
            row.setdefault(key, None)
    return rows


def main() -> None:
    os.chdir(paths.project_root())  # relative sources, so the committed outputs do not depend on the checkout's place
    out = Path("experiments/results/corpus_demo")
    out.mkdir(parents=True, exist_ok=True)
    source = out / "input.jsonl"
    count = build_input(source)
    options = {"keep_fields": META} if "keep_fields" in inspect.signature(score_files).parameters else {}
    with tempfile.TemporaryDirectory() as scratch:
        counts = score_files([source], scratch, fmt="jsonl", force=True, **options)
        rows = [json.loads(line) for line in Path(scratch, "articles.jsonl").read_text(encoding="utf-8").splitlines()]
    metadata = {json.loads(line)["id"]: json.loads(line) for line in source.read_text(encoding="utf-8").splitlines()}
    scores = out / "scores"
    scores.mkdir(exist_ok=True)
    (scores / "articles.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in complete_rows(rows, metadata)), encoding="utf-8")
    print(f"{count} articles, {counts['sentences']} sentences, {counts['errors']} errors")
    for folder, by in VIEWS.items():
        shutil.rmtree(out / folder, ignore_errors=True)
        write_corpus(scores, by, out / folder, seed=0)
        print(f"\n## by {by}\n\n" + (out / folder / "corpus.md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
