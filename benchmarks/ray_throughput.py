"""Sentences per second: the Ray engine with 1 and 2 actors against the single-process path.

Input: ``--articles`` short articles made deterministically of 1-8 seed sentences each, as one
JSONL file. Every path scores the same file into JSONL and the outputs are compared. Times:

* single process: ``stance.scoring.local.write_scores(read_articles(...))`` with a model already loaded
  (``load`` is timed on its own);
* Ray: ``stance.scoring.distributed.score_files`` on a Ray started beforehand (``ray.init`` is timed on
  its own); the time holds reading, starting the actors (each loads the model), scoring and
  writing. The fixed part is measured on a five-article input and reported too.

Writes ``benchmarks/results/ray.json`` and ``ray.md``. Run: ``python benchmarks/ray_throughput.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from stance import paths
from stance.segment import segment

RESULTS = Path(__file__).resolve().parent / "results"


def generated_records(n: int, seed: int = 0) -> list[dict[str, str]]:
    """``n`` short articles of 1-8 seed sentences each (the generator of tests/test_distributed.py)."""
    seeds = [p.read_text(encoding="utf-8") for p in sorted(paths.seeds_dir().glob("*.txt"))]
    sentences = [s.text for text in seeds for s in segment(text)]
    rng = random.Random(seed)
    return [{"id": f"gen-{i:05d}", "text": ("\n" if i % 3 == 0 else " ").join(rng.sample(sentences, rng.randint(1, 8)))}
            for i in range(n)]


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def same_outputs(a: Path, b: Path) -> bool:
    return all((a / name).read_bytes() == (b / name).read_bytes() for name in ("sentences.jsonl", "articles.jsonl"))


def run(articles: int, model: str, actor_counts: list[int]) -> dict[str, Any]:
    import ray

    from stance.api import kernel, model_label
    from stance.scoring.distributed import score_files
    from stance.scoring.local import write_scores
    from stance.scoring.readers import read_articles

    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="ray-bench-"))
    corpus = write_jsonl(work / "corpus.jsonl", generated_records(articles))
    tiny = write_jsonl(work / "tiny.jsonl", generated_records(5, seed=1))
    rows: list[dict[str, Any]] = []

    started = time.perf_counter()
    loaded = kernel(model)
    load_seconds = time.perf_counter() - started
    started = time.perf_counter()
    counts = write_scores(read_articles([corpus]), loaded, work / "local")
    seconds = time.perf_counter() - started
    rows.append({"engine": "single process", "actors": None, "seconds": seconds,
                 "sentences_per_s": counts["sentences"] / seconds, "fixed_seconds": load_seconds,
                 "same_rows": True})
    print(f"single process: {seconds:.1f} s, {counts['sentences'] / seconds:.0f} sentences/s "
          f"(+ {load_seconds:.1f} s to load the model)", flush=True)

    started = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    init_seconds = time.perf_counter() - started
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        for actors in actor_counts:
            started = time.perf_counter()
            score_files([tiny], work / f"tiny-{actors}", model=model, actors=actors)
            fixed = time.perf_counter() - started
            started = time.perf_counter()
            ray_counts = score_files([corpus], work / f"ray-{actors}", model=model, actors=actors)
            seconds = time.perf_counter() - started
            assert ray_counts == counts, (ray_counts, counts)
            same = same_outputs(work / "local", work / f"ray-{actors}")
            rows.append({"engine": "ray", "actors": actors, "seconds": seconds,
                         "sentences_per_s": counts["sentences"] / seconds, "fixed_seconds": fixed,
                         "same_rows": same})
            print(f"ray, {actors} actor(s): {seconds:.1f} s, {counts['sentences'] / seconds:.0f} sentences/s "
                  f"(a 5-article run takes {fixed:.1f} s); same rows: {same}", flush=True)
    finally:
        ray.shutdown()
    return {
        "articles": counts["articles"],
        "sentences": counts["sentences"],
        "model": model_label(model),
        "cpus": os.cpu_count(),
        "ray_version": ray.__version__,
        "python": platform.python_version(),
        "ray_init_seconds": init_seconds,
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "runs": rows,
    }


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "# Ray engine throughput",
        "",
        f"{result['articles']} generated articles, {result['sentences']} sentences, model `{result['model']}`, "
        f"{result['cpus']} CPUs, Ray {result['ray_version']}, Python {result['python']}. "
        "Made by `python benchmarks/ray_throughput.py`.",
        "",
        "| engine | actors | seconds | sentences/s | fixed cost (s) | same rows as single process |",
        "|---|---|---|---|---|---|",
    ]
    for row in result["runs"]:
        lines.append(f"| {row['engine']} | {row['actors'] or '-'} | {row['seconds']:.1f} | "
                     f"{row['sentences_per_s']:.0f} | {row['fixed_seconds']:.1f} | {'yes' if row['same_rows'] else 'NO'} |")
    lines += [
        "",
        "Single process: `write_scores` with the model already loaded; its fixed cost is loading the model.",
        "Ray: `score_files` on a running Ray, reading, actor start-up (each actor loads the model), scoring and "
        "writing included; its fixed cost is the time of a five-article run. "
        f"Starting Ray itself took {result['ray_init_seconds']:.1f} s more. One-minute load average before and "
        f"after: {result['load_average_1min'][0]} and {result['load_average_1min'][1]} (other work on the "
        "machine takes CPUs from every engine alike).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=3000)
    parser.add_argument("--model", default="baseline")
    parser.add_argument("--actors", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    result = run(args.articles, args.model, args.actors)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ray.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (args.out / "ray.md").write_text(markdown(result), encoding="utf-8")
    print(markdown(result))
    return 0 if all(row["same_rows"] for row in result["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
