"""What ``stance score`` costs over predicting the same sentences, and its peak memory.

:func:`measure` builds a JSONL file of news-length articles (about 3,000 sentences, from the seed
and supplement sentences) in a temporary folder and times, interleaved over ``rounds`` rounds
after a warm-up (so load from other processes falls on every side alike):

* ``stance score``'s library path, ``stance.scoring.local.write_scores`` with the baseline, read
  from the file: by the default rule, forced serial, and forced overlapped (the worker process);
* the loaded model's ``predict_proba`` on exactly the sentences the kernel predicts, with the
  contexts the kernel builds (what ``stance score`` must do anyway), and ``stance.predict`` on the
  lone sentences (no context: a cheaper model call);

and reports medians, each side's spread over the rounds, the overhead in percent, the CPU seconds
of this process and of its children (the worker) per run, and the split of a serial run into its
stages. It then runs the ``stance score`` CLI (baseline, JSONL input) in a fresh process per size
(about 10k and 50k sentences) and records its peak resident memory via ``RUSAGE_CHILDREN``, and
the same for the overlapped library path (this process and the worker apart). The machine's
load average is recorded: the overlapped path needs an idle second core to pay off.

Run: ``python benchmarks/score_overhead.py`` (prints a markdown table; about 2 minutes here).
"""

from __future__ import annotations

import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SIZES = (10_000, 50_000)  # sentences of the peak-memory runs


def sentence_pool() -> list[str]:
    """Seed and supplement sentences (each a labelled sentence of the training data), in a fixed order."""
    from stance.data.loaders import seed_rows, supplement_rows

    return [r["text"] for r in seed_rows()] + [r["text"] for r in supplement_rows()]


def articles(n_sentences: int, seed: int = 0, low: int = 15, high: int = 40) -> list[dict[str, str]]:
    """Articles of ``low``-``high`` pool sentences in paragraphs of 1-3, about ``n_sentences`` in all."""
    pool = sentence_pool()
    rng = random.Random(seed)
    records: list[dict[str, str]] = []
    total = 0
    while total < n_sentences:
        picked = rng.sample(pool, min(rng.randint(low, high), n_sentences - total) or 1)
        paragraphs, i = [], 0
        while i < len(picked):
            step = rng.choice((1, 1, 2, 3))
            paragraphs.append(" ".join(picked[i: i + step]))
            i += step
        records.append({"id": f"article-{len(records):05d}", "text": "\n\n".join(paragraphs)})
        total += len(picked)
    return records


def write_jsonl(path: Path, records: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _interleaved(sides: dict[str, Callable[[], Any]], rounds: int) -> dict[str, dict[str, Any]]:
    """Each side once per round, in turn, after one warm-up call each: wall and CPU seconds."""
    for fn in sides.values():
        fn()
    runs: dict[str, dict[str, list[float]]] = {name: {"wall": [], "cpu": [], "children_cpu": []} for name in sides}
    for _ in range(rounds):
        for name, fn in sides.items():
            cpu, children, started = _cpu(resource.RUSAGE_SELF), _cpu(resource.RUSAGE_CHILDREN), time.perf_counter()
            fn()
            runs[name]["wall"].append(time.perf_counter() - started)
            runs[name]["cpu"].append(_cpu(resource.RUSAGE_SELF) - cpu)
            runs[name]["children_cpu"].append(_cpu(resource.RUSAGE_CHILDREN) - children)
    return {name: {"median_s": statistics.median(r["wall"]), "min_s": min(r["wall"]), "max_s": max(r["wall"]),
                   "runs_s": [round(x, 4) for x in r["wall"]], "cpu_s": statistics.median(r["cpu"]),
                   "worker_cpu_s": statistics.median(r["children_cpu"])} for name, r in runs.items()}


def _write_all(rows: list[Any], sink: Any) -> None:
    for batch in rows:
        sink.write(batch)
    sink.close()


def stage_split(corpus: Path, scoring: Any, rounds: int) -> dict[str, float]:
    """Median seconds of each stage of a serial run over ``corpus`` (batches as ``write_scores`` makes them)."""
    from stance.scoring.local import ARTICLES_PER_BATCH
    from stance.scoring.pipeline import BatchSink, batches
    from stance.scoring.readers import read_articles

    times: dict[str, list[float]] = {}

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        out = fn()
        times.setdefault(name, []).append(time.perf_counter() - started)
        return out

    with tempfile.TemporaryDirectory() as folder:
        for _ in range(rounds):
            read = timed("read", lambda: list(read_articles([corpus])))
            groups = list(batches(read, ARTICLES_PER_BATCH))
            prepared = timed("segment + contexts", lambda g=groups: [scoring.prepare(b) for b in g])
            predicted = timed("predict", lambda p=prepared: [scoring.predict(x) for x in p])
            scored = timed("summarise", lambda p=prepared, q=predicted: [scoring.finish(*x) for x in zip(p, q)])
            rows = timed("build rows", lambda s=scored: [scoring.batch_rows(x) for x in s])
            sink = BatchSink(scoring, Path(folder) / "s.jsonl", Path(folder) / "a.jsonl", "jsonl", False)
            timed("write JSONL", lambda r=rows, out=sink: _write_all(r, out))
    return {name: statistics.median(values) for name, values in times.items()}


_RSS_WRAPPER = (
    "import resource, subprocess, sys\n"
    "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
    # RUSAGE_CHILDREN of this fresh wrapper: the largest peak among its descendants that were waited for
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)
_PASS_THROUGH = "import subprocess, sys\nsubprocess.run(sys.argv[1:], check=True)\n"
_OVERLAPPED_RSS = (
    "import resource, sys, time\n"
    "t0 = time.perf_counter()\n"
    "from stance.api import kernel\n"
    "from stance.scoring.local import write_scores\n"
    "from stance.scoring.readers import read_articles\n"
    "write_scores(read_articles([sys.argv[1]]), kernel(sys.argv[3]), sys.argv[2], force=True, overlap=True)\n"
    "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,\n"
    "      time.perf_counter() - t0)\n"
)


def peak_memory(work: Path, model: str, sizes: tuple[int, ...] = SIZES) -> list[dict[str, Any]]:
    """Peak RSS (MiB) of the ``stance score`` CLI, and of the overlapped library path (this process
    and its worker apart), on JSONL files of ``sizes`` sentences; a fresh process for each run."""
    out = []
    for size in sizes:
        corpus = write_jsonl(work / f"memory-{size}.jsonl", articles(size, seed=size))
        target = work / f"memory-out-{size}"
        command = [sys.executable, "-m", "stance", "score", str(corpus), "--out", str(target), "--format", "jsonl",
                   "--model", model, "--force"]
        started = time.perf_counter()
        cli_kib = int(subprocess.run([sys.executable, "-c", _RSS_WRAPPER, *command], check=True, capture_output=True,
                                     text=True).stdout.split()[0])
        cli_seconds = time.perf_counter() - started
        written = sum(1 for _ in (target / "sentences.jsonl").open(encoding="utf-8"))
        # through a small wrapper: Linux keeps a process's peak RSS across exec, so a process forked
        # from this (large) one would report this one's memory as its own
        main_kib, worker_kib, overlapped_seconds = subprocess.run(
            [sys.executable, "-c", _PASS_THROUGH, sys.executable, "-c", _OVERLAPPED_RSS, str(corpus),
             str(work / f"memory-overlap-{size}"), model], check=True, capture_output=True, text=True).stdout.split()
        out.append({"sentences": written, "input_mib": corpus.stat().st_size / 2**20, "cli_peak_rss_mib": cli_kib / 1024,
                    "cli_seconds": cli_seconds, "overlapped_main_peak_rss_mib": int(main_kib) / 1024,
                    "overlapped_worker_peak_rss_mib": int(worker_kib) / 1024,
                    "overlapped_seconds": float(overlapped_seconds)})
    return out


def measure(rounds: int = 3, model: str = "baseline", n_sentences: int = 3000, memory: bool = True) -> dict[str, Any]:
    """Every figure of this benchmark as a dict (see the module docstring); seconds and MiB.

    ``rounds`` (>= 1): timed rounds per side; ``memory=False`` skips the peak-memory runs.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    import stance
    from stance.api import kernel
    from stance.scoring.local import idle_cpus, write_scores
    from stance.scoring.readers import read_articles

    scoring = kernel(model)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        corpus = write_jsonl(work / "score.jsonl", articles(n_sentences))
        prepared = scoring.prepare(list(read_articles([corpus])))
        texts = [t for i in range(len(prepared.articles)) for t in prepared.texts(i)]
        contexts = [c for part in prepared.contexts for c in part]

        def score(overlap: bool | None, name: str) -> Callable[[], Any]:
            return lambda: write_scores(read_articles([corpus]), scoring, work / name, "jsonl", force=True,
                                        overlap=overlap)

        sides = {
            "stance score (default rule)": score(None, "default"),
            "stance score (serial)": score(False, "serial"),
            "stance score (overlapped)": score(True, "overlapped"),
            "predict_proba with contexts": lambda: scoring.model.predict_proba(texts, contexts),
            "stance.predict (lone sentences)": lambda: stance.predict(texts, model=model),
        }
        times = _interleaved(sides, rounds)
        stages = stage_split(corpus, scoring, rounds)
        peaks = peak_memory(work, model) if memory else []
    with_contexts = times["predict_proba with contexts"]["median_s"]
    lone = times["stance.predict (lone sentences)"]["median_s"]
    overhead = {name: {"vs_predict_with_contexts": t["median_s"] / with_contexts - 1,
                       "vs_stance_predict_lone": t["median_s"] / lone - 1}
                for name, t in times.items() if name.startswith("stance score")}
    return {
        "model": model, "articles": len(prepared.articles), "sentences": len(texts), "rounds": rounds,
        "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "load_average_before": load_before, "load_average_after": os.getloadavg()[0],
        "idle_cpus_at_end": idle_cpus(), "times": times, "overhead": overhead, "stages_s": stages,
        "memory": peaks,
        "memory_growth": (peaks[-1]["cli_peak_rss_mib"] / peaks[0]["cli_peak_rss_mib"]) if peaks else None,
    }


def table(result: dict[str, Any]) -> str:
    """The figures of :func:`measure` as markdown."""
    lines = [f"`stance score` vs prediction, {result['model']}, {result['articles']} articles / "
             f"{result['sentences']} sentences, {result['rounds']} interleaved rounds; {result['cpus']} CPUs, "
             f"load average {result['load_average_before']:.2f} before and {result['load_average_after']:.2f} after",
             "", "| side | median s | spread (min-max) s | CPU s here | CPU s worker | vs predict_proba with contexts "
             "| vs stance.predict (lone) |", "|---|---|---|---|---|---|---|"]
    for name, t in result["times"].items():
        over = result["overhead"].get(name)
        cells = (f"{over['vs_predict_with_contexts']:+.0%} | {over['vs_stance_predict_lone']:+.0%}" if over
                 else "| ")
        lines.append(f"| {name} | {t['median_s']:.3f} | {t['min_s']:.3f}-{t['max_s']:.3f} | {t['cpu_s']:.3f} | "
                     f"{t['worker_cpu_s']:.3f} | {cells} |")
    total = sum(result["stages_s"].values())
    lines += ["", "Serial run by stage: " + ", ".join(f"{name} {s * 1000:.0f} ms ({s / total:.0%})"
                                                      for name, s in result["stages_s"].items())]
    if result["memory"]:
        lines += ["", "| sentences | input MiB | CLI (default rule) peak RSS MiB | CLI s | overlapped library path: "
                  "main / worker peak RSS MiB | overlapped s (in a fresh process) |", "|---|---|---|---|---|---|"]
        lines += [f"| {m['sentences']:,} | {m['input_mib']:.1f} | {m['cli_peak_rss_mib']:.0f} | {m['cli_seconds']:.1f} | "
                  f"{m['overlapped_main_peak_rss_mib']:.0f} / {m['overlapped_worker_peak_rss_mib']:.0f} | "
                  f"{m['overlapped_seconds']:.1f} |" for m in result["memory"]]
        lines.append(f"\nCLI peak RSS, largest / smallest input: {result['memory_growth']:.2f}")
    return "\n".join(lines)


def main() -> None:
    """Measure and print the markdown table."""
    print(table(measure()))


if __name__ == "__main__":
    main()
