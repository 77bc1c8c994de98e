"""Score the five seeds in batch with the default model and put the generated tables in the README."""

import json
import os
import re

from stance import paths
from stance.labels import LABELS
from stance.scoring.local import score_files

MARK = "<!-- {name}:{edge} -->"


def _signed(value) -> str:
    return "–" if value is None else f"{value:+.2f}"


def seed_summary_table(articles_path) -> str:
    rows = [json.loads(line) for line in articles_path.read_text().splitlines()]
    head = ("| article | sentences | " + " | ".join(f"{label} (share)" for label in LABELS)
            + " | engagement | balance | stance index [95 % CI] | article label | model |")
    lines = [head, "|---|---|" + "---|" * len(LABELS) + "---|---|---|---|---|"]
    for r in rows:
        cells = " | ".join(f"{r[f'n_{label}']} ({r[f'share_{label}']:.0%})" for label in LABELS)
        index = f"{_signed(r['stance_index'])} [{_signed(r['stance_index_ci_low'])}, {_signed(r['stance_index_ci_high'])}]"
        lines.append(f"| {r['doc_id']} | {r['n_sentences']} | {cells} | {r['engagement']:.2f} | {_signed(r['balance'])} "
                     f"| {index} | {r['article_label']} | {r['model']} |")
    return "\n".join(lines) + "\n"


def inject(readme_text: str, name: str, body: str) -> str:
    start, end = MARK.format(name=name, edge="start"), MARK.format(name=name, edge="end")
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    if not pattern.search(readme_text):
        return readme_text
    return pattern.sub(lambda _: f"{start}\n{body}{end}", readme_text)


def main() -> None:
    out = paths.results_dir() / "seed_scores"
    # sources relative to the checkout, so the committed outputs do not depend on where it lives
    os.chdir(paths.project_root())
    seeds = paths.seeds_dir().relative_to(paths.project_root())
    counts = score_files([seeds], out, fmt="jsonl", force=True)
    table = seed_summary_table(out / "articles.jsonl")
    (paths.results_dir() / "seed_summaries.md").write_text(table)
    print(table)
    print(f"{counts['articles']} articles, {counts['sentences']} sentences, {counts['errors']} errors -> {out}")
    readme = paths.project_root() / "README.md"
    text = readme.read_text()
    text = inject(text, "seed-summaries", table)
    grid = "full" if (paths.results_dir() / "full" / "results.md").exists() else "main"
    results = (paths.results_dir() / grid / "results.md").read_text().split("\n", 2)[2]
    text = inject(text, "results", results)
    from stance.evaluation.tables import headline_markdown

    payload = json.loads((paths.results_dir() / grid / "metrics.json").read_text())
    text = inject(text, "headline", headline_markdown(payload))
    bench = paths.project_root() / "benchmarks" / "results" / "benchmark.md"
    if bench.exists():
        text = inject(text, "performance", bench.read_text())
    speed = paths.project_root() / "benchmarks" / "results" / "shipped_speed.md"
    if speed.exists():
        text = inject(text, "shipped-speed", speed.read_text())
    backends = paths.results_dir() / "backends" / "backends.md"
    if backends.exists():
        text = inject(text, "backends", backends.read_text())
    ray = paths.project_root() / "benchmarks" / "results" / "ray.md"
    if ray.exists():
        text = inject(text, "ray", ray.read_text())
    readme.write_text(text)


if __name__ == "__main__":
    main()
