"""The corpus view of the held-out article test set (44 articles with an outlet, a date, a register and
the writer's side; none of them is in any model's training data): score them with the default model,
then group by the writer's side (a check of the stance index against known sides), by register, by
outlet and by month.

Writes experiments/results/corpus_demo/: input.jsonl (the articles with their metadata),
scores/articles.jsonl (the article rows; the sentence rows are not kept), and by_outlet/,
by_month/, by_register/ (each: corpus.csv/.md/.json, two PNGs, corpus.html). Prints the tables.
"""

import json
import os
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from stance import paths
from stance.scoring.corpus import write_corpus
from stance.scoring.local import score_files

META = ["outlet", "date", "register", "side"]
VIEWS = {"by_side": "side", "by_register": "register", "by_outlet": "outlet", "by_month": "date:month"}


def build_input(target: Path) -> int:
    """One JSONL row per held-out test article: id, text, outlet, date, register, side (the writer's)."""
    articles = paths.project_root() / "data" / "article_test"
    table = pd.read_csv(articles / "articles.csv", dtype=str, keep_default_na=False)
    with target.open("w", encoding="utf-8") as out:
        for r in table.to_dict(orient="records"):
            text = (articles / "texts" / f"{r['id']}.txt").read_text(encoding="utf-8")
            out.write(json.dumps({"id": r["id"], "text": text, **{k: r[k] for k in META}}, ensure_ascii=False) + "\n")
    return len(table)


def main() -> None:
    os.chdir(paths.project_root())  # relative sources, so the committed outputs do not depend on the checkout's place
    out = Path("experiments/results/corpus_demo")
    out.mkdir(parents=True, exist_ok=True)
    source = out / "input.jsonl"
    count = build_input(source)
    with tempfile.TemporaryDirectory() as scratch:
        counts = score_files([source], scratch, fmt="jsonl", force=True, keep_fields=META)
        scores = out / "scores"
        scores.mkdir(exist_ok=True)
        # the article rows only: the sentence rows would make the committed folder large
        shutil.copyfile(Path(scratch, "articles.jsonl"), scores / "articles.jsonl")
    print(f"{count} articles, {counts['sentences']} sentences, {counts['errors']} errors")
    for folder, by in VIEWS.items():
        shutil.rmtree(out / folder, ignore_errors=True)
        write_corpus(scores, by, out / folder, seed=0)
        print(f"\n## by {by}\n\n" + (out / folder / "corpus.md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
