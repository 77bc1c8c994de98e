"""Prediction speed of the shipped models side by side (sentences/s), interleaved over rounds.

Both models predict the same lone sentences (no context) in one process; the rounds alternate the
models so that load on a shared machine hits each alike; the median and the spread of the rounds
are reported with the load average before and after. Writes ``benchmarks/results/shipped_speed.md``.
Cold caches are excluded: each model predicts once before timing, and frozen-encoder embeddings are
never read from the on-disk cache (``cache=False`` set on the loaded models, in this process only).
"""

import json
import os
import platform
import statistics
import time
from pathlib import Path

from stance import paths
from stance.api import load
from stance.data.loaders import contrast_test_rows, seed_rows
from stance.models.embedding import without_embedding_cache

ROUNDS = 3
OUT = Path(__file__).resolve().parent / "results" / "shipped_speed.md"


def main() -> None:
    texts = [r["text"] for r in seed_rows()] + [r["text"] for r in contrast_test_rows()]
    models = {}
    for name in ("baseline", "transformer"):
        # time the encoder, not the embedding cache's file reads
        model = without_embedding_cache(load(name))
        model.threads = 2  # torch threads (an ensemble passes it to its members); the 2 cores here
        model.predict_proba(texts[:8])
        models[name] = model
    load_before = os.getloadavg()[0]
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(ROUNDS):
        for name, model in models.items():
            start = time.perf_counter()
            model.predict_proba(texts)
            times[name].append(time.perf_counter() - start)
    load_after = os.getloadavg()[0]
    lines = ["| model | spec | sentences/s (median of rounds) | spread of rounds (s) |", "|---|---|---|---|"]
    rates = {}
    for name in models:
        config = json.loads((paths.models_dir() / name / "config.json").read_text())
        median = statistics.median(times[name])
        rates[name] = len(texts) / median
        lines.append(f"| `{name}` | {config.get('spec')} | {rates[name]:,.0f} | "
                     f"{min(times[name]):.3f}-{max(times[name]):.3f} |")
    lines += ["", f"{len(texts)} lone sentences (seeds and contrast test), {ROUNDS} interleaved rounds, "
              f"`baseline` / `transformer` speed ratio {rates['baseline'] / rates['transformer']:,.0f}x; "
              f"{os.cpu_count()} CPUs, Python {platform.python_version()}, one-minute load average "
              f"{load_before:.2f} before and {load_after:.2f} after. Made by `python benchmarks/shipped_speed.py`."]
    OUT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
