"""Segmentation time by input kind and size: is :func:`stance.segment.segment` linear?

Kinds (each one document of the given size): ``prose`` (the seed texts repeated, capitalised
sentences on many lines), ``lower-case`` (one line, no capital after a full stop, as
speech-to-text gives), ``abbreviations`` (one line where every full stop follows ``etc.``) and
``unpunctuated`` (one line, no full stop). Sizes 1 KB to 1 MB. The kinds and sizes are
interleaved over three rounds; each row gives the median seconds, the spread (max - min) and
microseconds per character. Writes ``benchmarks/results/segmentation.md``.

Run: ``python benchmarks/segmentation.py`` from the checkout.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from stance import paths
from stance.segment import segment

SIZES = {"1 KB": 1_000, "10 KB": 10_000, "100 KB": 100_000, "1 MB": 1_000_000}
ROUNDS = 3


def documents() -> dict[str, str]:
    """One unit text per kind, repeated to size by :func:`make`."""
    prose = "\n".join(p.read_text(encoding="utf-8") for p in sorted(paths.seeds_dir().glob("*.txt")))
    return {
        "prose": prose,
        "lower-case": "we met the minister today. it was fine. they said scanning works. nobody agreed. ",
        "abbreviations": "they sent phones, laptops etc. and tablets etc. ",
        "unpunctuated": "we met the minister today and it was fine and they said scanning works ",
    }


def make(unit: str, size: int) -> str:
    return (unit * (size // len(unit) + 1))[:size]


def main() -> None:
    kinds = documents()
    segment(make(kinds["prose"], 1_000))  # load pysbd before timing
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(ROUNDS):
        for size_name, size in SIZES.items():
            for kind, unit in kinds.items():
                text = make(unit, size)
                started = time.perf_counter()
                segment(text)
                times.setdefault((kind, size_name), []).append(time.perf_counter() - started)
    lines = ["# Segmentation time by input kind and size", "",
             f"`python benchmarks/segmentation.py`; {ROUNDS} rounds, kinds interleaved; median and spread (max - min).",
             "", "| kind | size | median s | spread s | µs per character |", "|---|---|---:|---:|---:|"]
    for kind in kinds:
        for size_name, size in SIZES.items():
            runs = times[(kind, size_name)]
            median = statistics.median(runs)
            lines.append(f"| {kind} | {size_name} | {median:.4f} | {max(runs) - min(runs):.4f} | {median / size * 1e6:.2f} |")
    ratio = statistics.median(times[("lower-case", "1 MB")]) / statistics.median(times[("prose", "1 MB")])
    lines += ["", f"1 MB lower-case line / 1 MB prose: **{ratio:.2f}x** (target: within 3x).", ""]
    out = Path(__file__).parent / "results" / "segmentation.md"
    out.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
