"""The performance benchmark (issues 7 and 19): prediction and batch scoring against what a user would otherwise write.

Every comparison runs all its sides in this one process, on the same inputs, after a warm-up,
and reports the median of several rounds with their spread; in every round each side runs once,
in turn, so load from other processes falls on all sides alike. The one-minute load average is
recorded before and after.

1. the shipped transformer's ``stance.predict`` (its default backend) vs
   ``transformers.pipeline("feature-extraction")`` over the same encoder with the same saved head
   (``benchmarks/transformer_bench.py``), at its defaults and at ``batch_size=64``, and every
   inference backend side by side;
2. baseline ``stance.predict`` (compiled arrays) vs the same scikit-learn pipeline's ``predict_proba`` /
   ``decision_function`` (refitted: a saved baseline holds no scikit-learn objects), and how far
   their probabilities differ;
3. ``stance score`` (the library function the CLI calls, and the CLI itself) on a JSONL file of
   articles vs ``stance.predict`` on the same sentences as a list;
4. cold start in fresh subprocesses: ``import stance``, first baseline / transformer predict;
5. peak resident memory of ``stance score`` (baseline) on ~10k and ~50k sentence JSONL files;
6. the physical limit: sustained fp32 and int8 matmul rates, the encoder's FLOPs per sentence, and
   each backend's throughput as a fraction of what those rates allow.

By default everything runs twice back to back and the ratios of the two runs are compared
(they should agree within 15 %). Writes ``benchmarks/results/benchmark.json`` and ``benchmark.md``
(the body of the README's Performance section). Run: ``make benchmark`` or ``python benchmarks/run.py``
(about 10 minutes on 2 cores; ``--runs 1`` for one run, ``--quick`` for a smoke run with small inputs).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))  # benchmarks/ is not a package: its sibling modules

from transformer_bench import bench_limit, bench_transformer  # noqa: E402
from transformer_bench import interleaved as compare  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
CACHE = ROOT / "cache" / "benchmark"
BASELINE_DIR = CACHE / "baseline"
# torch threads for every timing (the machine's 2 cores); set here, the library leaves torch alone
THREADS = 2
PROBE = "Scanning every private message would break end-to-end encryption for everyone."

TARGETS = {
    "transformer_vs_default_pipeline": 4.0,
    "transformer_vs_pipeline_bs64": 3.0,
    "baseline_sentences_per_s": 20_000.0,
    "import_seconds": 0.3,
    "first_baseline_predict_seconds": 1.0,
    "score_overhead": 0.15,
}


# ---------------------------------------------------------------- inputs


def pool_sentences() -> list[str]:
    """Every seed sentence (segmented by ``stance.segment``) and every supplement sentence, in a fixed order."""
    from stance import paths
    from stance.data.loaders import supplement_rows
    from stance.segment import segment

    seeds = [p.read_text(encoding="utf-8") for p in sorted(paths.seeds_dir().glob("*.txt"))]
    sentences = [s.text for text in seeds for s in segment(text)]
    return sentences + [r["text"] for r in supplement_rows()]


# Attributions put in front of repeated sentences, so a list of a few thousand is not the same
# few hundred strings over and over (tokens, n-grams and lengths vary as in reporting)
_LEADS = ("", "According to the report, ", "Critics said that ", "The minister argued that ",
          "In a statement, the company said ", "Campaigners claimed that ", "On Tuesday, officials noted that ")


def benchmark_sentences(n: int, seed: int = 0) -> list[str]:
    """``n`` sentences: the pool, then the pool again behind varied attributions, shuffled deterministically."""
    pool = pool_sentences()
    out = []
    for i in range(n):
        sentence, lead = pool[i % len(pool)], _LEADS[(i // len(pool)) % len(_LEADS)]
        out.append(lead + sentence[:1].lower() + sentence[1:] if lead else sentence)
    random.Random(seed).shuffle(out)
    return out


def seed_paragraph_sizes() -> list[int]:
    """Sentences per non-empty line of every seed article (news paragraphs are often one sentence)."""
    from stance import paths
    from stance.segment import segment

    return [len(segment(line)) for path in sorted(paths.seeds_dir().glob("*.txt"))
            for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


def generated_articles(n_sentences: int, seed: int = 0, low: int = 15, high: int = 40) -> list[dict[str, str]]:
    """Articles of ``low``-``high`` pool sentences (news-article length), ~``n_sentences`` sentences in all.

    Paragraph lengths (sentences per line) are drawn from those of the seed articles.
    """
    pool = pool_sentences()
    sizes = seed_paragraph_sizes()
    rng = random.Random(seed)
    records, total = [], 0
    while total < n_sentences:
        picked = rng.sample(pool, min(rng.randint(low, high), n_sentences - total) or 1)
        paragraphs, i = [], 0
        while i < len(picked):
            step = rng.choice(sizes)
            paragraphs.append(" ".join(picked[i : i + step]))
            i += step
        records.append({"id": f"article-{len(records):05d}", "text": "\n\n".join(paragraphs)})
        total += len(picked)
    return records


def write_jsonl(path: Path, records: Sequence[dict[str, Any]]) -> Path:
    """One JSON object per line."""
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def segmented_sentences(records: Sequence[dict[str, str]]) -> list[str]:
    """The sentences ``stance score`` will predict for these articles (same segmenter)."""
    from stance.segment import segment

    return [s.text for r in records for s in segment(r["text"])]


# ---------------------------------------------------------------- models


def say(message: str) -> None:
    """One line of progress or result, flushed at once."""
    print(message, flush=True)


def shipped_transformer_dir() -> Path:
    """The shipped ``transformer`` folder in the store (``make all`` builds it)."""
    from stance.models.store import resolve

    return resolve("transformer").path


def baseline_model_dir() -> Path:
    """``models/baseline`` if saved, else a TF-IDF baseline trained once into ``cache/benchmark/baseline``."""
    from stance import paths
    from stance.models.tfidf_compiled import ARRAYS_FILE

    shipped = paths.models_dir() / "baseline"
    if (shipped / "config.json").exists() and (shipped / ARRAYS_FILE).exists():
        return shipped
    if (shipped / "config.json").exists():
        say("models/baseline is in the old skops format, which stance no longer reads; using the benchmark's own")
    if not (BASELINE_DIR / ARRAYS_FILE).exists():
        from stance.evaluation.shipping import train_and_save
        from stance.evaluation.specs import BASELINE_SPECS, SEED

        say(f"models/baseline is absent; training {BASELINE_SPECS[0].name} into {BASELINE_DIR.relative_to(ROOT)}")
        train_and_save(BASELINE_SPECS[0], BASELINE_DIR, extra="supplement", seed=SEED)
    return BASELINE_DIR


# ---------------------------------------------------------------- timing


def timed(fn: Callable[[], Any]) -> float:
    """Wall seconds of one call."""
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def rate(n: int, seconds: float) -> float:
    """Items per second."""
    return n / seconds if seconds > 0 else float("inf")


# ---------------------------------------------------------------- 2. baseline vs raw scikit-learn


def raw_sklearn_pipeline(model_dir: Path) -> tuple[Any, Callable[[list[str]], Any], list[int]]:
    """The scikit-learn model behind a saved baseline, refitted on the data its config names.

    A saved baseline holds only the compiled arrays (no scikit-learn objects), so the model a user
    would call is fitted again with the same parameters on the same (hash-checked) data. Returns
    the classifier, what a user would call on lone sentences for probabilities (``predict_proba``;
    ``decision_function`` for LinearSVC, which has only margins) and the classes it saw. A model
    that reads contexts has the context's columns after the sentence's: lone sentences leave them empty.
    """
    import scipy.sparse as sp

    from stance.data.loaders import data_hash, extra_training_rows, seed_rows
    from stance.evaluation.protocol import probe_free
    from stance.models.base import read_config
    from stance.models.tfidf import TfidfModel

    config = read_config(model_dir)
    rows = seed_rows() + extra_training_rows(config["training_data"].get("training_set", "supplement"))
    rows = [rows[i] for i in probe_free([r["text"] for r in rows])]
    texts, labels = [r["text"] for r in rows], [r["label"] for r in rows]
    contexts = [r.get("context", "") for r in rows]
    if data_hash(texts, labels) != config["training_data"]["data_sha256"]:
        raise RuntimeError(f"{model_dir} was trained on other data than the current seeds/supplement; retrain it")
    pipeline = TfidfModel(**config["params"]).fit(texts, labels, contexts).pipeline_
    features, head = pipeline.named_steps["features"], pipeline.named_steps["classifier"]
    context_columns = head.coef_.shape[1] - features.transform(["x"]).shape[1]
    method = head.predict_proba if config["params"].get("classifier", "logreg") == "logreg" else head.decision_function

    def call(sentences: list[str]) -> Any:
        x = features.transform(sentences)
        if context_columns:
            x = sp.hstack([x, sp.csr_matrix((x.shape[0], context_columns))]).tocsr()
        return method(x)

    call.__name__ = method.__name__
    return head, call, [int(c) for c in head.classes_]


def bench_baseline(model_dir: Path, sentences: list[str], repeats: int) -> dict[str, Any]:
    """Baseline ``stance.predict`` (compiled arrays) vs the same scikit-learn model called directly."""
    import numpy as np

    import stance
    from stance.models.base import expand_proba
    from stance.models.tfidf_compiled import softmax

    model = stance.load(model_dir)
    _, raw_call, present = raw_sklearn_pipeline(model_dir)
    times = compare({
        "stance.predict": lambda: stance.predict(sentences, model=model_dir),
        f"sklearn {raw_call.__name__}": lambda: raw_call(sentences),
    }, repeats)
    # same numbers: the compiled path against the pipeline's own probabilities (softmax of SVM margins)
    scores = raw_call(sentences)
    if raw_call.__name__ == "decision_function":
        scores = softmax(np.stack([-scores, scores], axis=1) if scores.ndim == 1 else scores)
    max_diff = float(np.abs(model.predict_proba(sentences) - expand_proba(scores, present)).max())
    n = len(sentences)
    ours, theirs = (v["median_s"] for v in times.values())
    out = {
        "sentences": n,
        "classifier": model.classifier,
        "max_abs_proba_diff_vs_raw": max_diff,
        "times": times,
        "sentences_per_s": {name: rate(n, v["median_s"]) for name, v in times.items()},
        "ratio_vs_raw": theirs / ours,
    }
    say(f"[2] baseline ({model.classifier}), {n} sentences: stance.predict {rate(n, ours):,.0f}/s, raw sklearn "
        f"{rate(n, theirs):,.0f}/s -> ratio {out['ratio_vs_raw']:.2f}x (target >= 20,000/s); probabilities differ "
        f"by at most {max_diff:.1e}")
    return out


# ---------------------------------------------------------------- 3. stance score vs predict


def bench_score(model_dir: Path, corpus: Path, sentences: list[str], work: Path, repeats: int, label: str,
                cli: bool) -> dict[str, Any]:
    """``stance score`` on ``corpus`` (in-process ``write_scores``, and optionally the CLI) vs ``stance.predict``.

    ``sentences`` are the corpus' sentences, segmented beforehand, so both sides predict the same.
    """
    import stance
    from stance.api import kernel
    from stance.scoring.local import write_scores
    from stance.scoring.readers import read_articles

    model = stance.load(model_dir)
    model.threads = THREADS  # the cached model stance.predict uses too
    scoring = kernel(model_dir)
    # what the kernel must predict in any case: the same sentences read with their contexts
    prepared = scoring.prepare(list(read_articles([corpus])))
    contexts = [c for part in prepared.contexts for c in part]
    texts = [t for i in range(len(prepared.articles)) for t in prepared.texts(i)]
    if texts != sentences:
        raise RuntimeError("the kernel segmented the corpus differently from segmented_sentences()")

    def score() -> None:
        write_scores(read_articles([corpus]), scoring, work / f"score-{label}", "jsonl", force=True)

    few = corpus.with_name(f"warm-{label}.jsonl")
    few.write_text("".join(corpus.read_text(encoding="utf-8").splitlines(keepends=True)[:2]), encoding="utf-8")
    times = compare({"stance score (write_scores)": score,
                     "stance.predict": lambda: stance.predict(sentences, model=model_dir),
                     "predict_proba with contexts": lambda: scoring.model.predict_proba(texts, contexts)}, repeats,
                    warm={"score": lambda: write_scores(read_articles([few]), scoring, work / f"warm-{label}",
                                                        "jsonl", force=True),
                          "predict": lambda: stance.predict(sentences[:64], model=model_dir)})
    # where the overhead goes: segmenting the articles alone (the rest is reading and writing rows)
    records = [json.loads(line) for line in corpus.open(encoding="utf-8")]
    segment_seconds = statistics.median(timed(lambda: segmented_sentences(records)) for _ in range(repeats))
    n = len(sentences)
    scored, listed = times["stance score (write_scores)"]["median_s"], times["stance.predict"]["median_s"]
    out: dict[str, Any] = {
        "model": label,
        "articles": sum(1 for _ in corpus.open(encoding="utf-8")),
        "sentences": n,
        "times": times,
        "sentences_per_s": {"stance score": rate(n, scored), "stance.predict": rate(n, listed)},
        "overhead": scored / listed - 1,
        "overhead_vs_predict_with_contexts": scored / times["predict_proba with contexts"]["median_s"] - 1,
        "segment_seconds": segment_seconds,
        "segment_share_of_score": segment_seconds / scored,
    }
    say(f"[3] {label}: stance score {rate(n, scored):,.0f} sentences/s vs stance.predict {rate(n, listed):,.0f}/s -> "
        f"overhead {out['overhead']:+.1%} (target <= +15%), {out['overhead_vs_predict_with_contexts']:+.1%} over "
        f"predicting the same sentences with their contexts; segmenting alone takes {segment_seconds:.2f} s "
        f"= {out['segment_share_of_score']:.0%} of stance score's time")
    if cli:
        command = [sys.executable, "-m", "stance", "score", str(corpus), "--out", str(work / f"cli-{label}"),
                   "--format", "jsonl", "--model", str(model_dir), "--force"]
        # once: a fresh process is dominated by start-up and loading, reported for reference only
        runs = [timed(lambda: subprocess.run(command, check=True, capture_output=True))]
        out["cli_seconds"] = statistics.median(runs)
        out["cli_sentences_per_s"] = rate(n, out["cli_seconds"])
        say(f"[3] {label}: the CLI as a fresh process (start-up and model load included): "
            f"{out['cli_seconds']:.2f} s, {out['cli_sentences_per_s']:,.0f} sentences/s")
    return out


# ---------------------------------------------------------------- 4. cold start


def fresh_seconds(codes: dict[str, str], repeats: int) -> dict[str, dict[str, Any]]:
    """Per side, the median in-process seconds its code prints (a float on its last line), each run in a
    fresh interpreter; every round runs each side once, in turn, so load falls on all sides alike.

    One unrecorded round first, so files are in the page cache for all recorded rounds.
    """
    values: dict[str, list[float]] = {name: [] for name in codes}
    for i in range(repeats + 1):
        for name, code in codes.items():
            done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT)
            if i:
                values[name].append(float(done.stdout.strip().splitlines()[-1]))
    return {name: {"median_s": statistics.median(v), "runs_s": [round(x, 4) for x in v]} for name, v in values.items()}


# the transformer's first prediction as it was before the ONNX backends read tokenizer.json with
# `tokenizers` alone (stance.models.tokenizer): transformers' tokenizer, which imports torch
_HF_TOKENIZER = (
    "import functools, transformers\nfrom stance.models import encoder, hf\n"
    "encoder.packaged_tokenizer = functools.lru_cache(maxsize=2)(lambda name='minilm': "
    "transformers.AutoTokenizer.from_pretrained(hf.encoder_dir(name), local_files_only=True))\n"
)


def bench_cold_start(baseline_dir: Path, transformer_dir: Path, repeats: int) -> dict[str, Any]:
    """``import stance``; first ``stance.predict`` (loading included) with the baseline and the transformer,
    and the transformer's with transformers' tokenizer (as before ``stance.models.tokenizer``)."""
    clock = "import time; t0 = time.perf_counter()\n"
    transformer = (f"import stance\nstance.predict({PROBE!r}, model={str(transformer_dir)!r})\n"
                   "print(time.perf_counter() - t0)")
    out = fresh_seconds({
        "import_stance": clock + "import sys, stance\nassert 'torch' not in sys.modules, 'import stance imported torch'\n"
                                 "print(time.perf_counter() - t0)",
        "first_predict_baseline": clock + f"import stance\nstance.predict({PROBE!r}, model={str(baseline_dir)!r})\n"
                                          "print(time.perf_counter() - t0)",
        "first_predict_transformer": clock + transformer,
        "first_predict_transformer_hf_tokenizer": clock + _HF_TOKENIZER + transformer,
    }, repeats)
    out["tokenizer_speedup"] = (out["first_predict_transformer_hf_tokenizer"]["median_s"]
                                / out["first_predict_transformer"]["median_s"])
    say(f"[4] cold start: import stance {out['import_stance']['median_s']:.3f} s (target < 0.3), first baseline "
        f"predict {out['first_predict_baseline']['median_s']:.3f} s (target < 1), first transformer predict "
        f"{out['first_predict_transformer']['median_s']:.3f} s (loading included), "
        f"{out['first_predict_transformer_hf_tokenizer']['median_s']:.3f} s with transformers' tokenizer")
    return out


# ---------------------------------------------------------------- 5. peak memory


_RSS_WRAPPER = (
    "import resource, subprocess, sys, time\n"
    "t0 = time.perf_counter()\n"
    "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
    # RUSAGE_CHILDREN of this fresh wrapper: the peak of its one child, the stance CLI
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, time.perf_counter() - t0)\n"
)


def peak_rss_mb(command: list[str]) -> tuple[float, float]:
    """Peak resident memory (MiB) and wall seconds of ``command`` run as a child process."""
    done = subprocess.run([sys.executable, "-c", _RSS_WRAPPER, *command], check=True, capture_output=True,
                          text=True, cwd=ROOT)
    kib, seconds = done.stdout.split()
    return int(kib) / 1024, float(seconds)


def bench_memory(baseline_dir: Path, work: Path, sizes: Sequence[int]) -> dict[str, Any]:
    """Peak RSS of the ``stance score`` CLI (baseline) on generated JSONL files of ``sizes`` sentences."""
    rows = []
    for size in sizes:
        corpus = write_jsonl(work / f"memory-{size}.jsonl", generated_articles(size, seed=size))
        command = [sys.executable, "-m", "stance", "score", str(corpus), "--out", str(work / f"memory-out-{size}"),
                   "--format", "jsonl", "--model", str(baseline_dir), "--force"]
        mib, seconds = peak_rss_mb(command)
        written = sum(1 for _ in (work / f"memory-out-{size}" / "sentences.jsonl").open(encoding="utf-8"))
        rows.append({"target_sentences": size, "sentences": written, "input_mib": corpus.stat().st_size / 2**20,
                     "peak_rss_mib": mib, "seconds": seconds})
        say(f"[5] stance score, {written:,} sentences ({corpus.stat().st_size / 2**20:.1f} MiB JSONL): peak RSS "
            f"{mib:.0f} MiB, {seconds:.1f} s")
    growth = rows[-1]["peak_rss_mib"] / rows[0]["peak_rss_mib"]
    say(f"[5] peak RSS ratio largest/smallest input: {growth:.2f} for {rows[-1]['sentences'] / rows[0]['sentences']:.1f}x "
        "the sentences")
    return {"runs": rows, "rss_growth": growth}


# ---------------------------------------------------------------- report


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    import torch

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu": cpu, "python": platform.python_version(), "torch": torch.__version__,
            "transformers": __import__("transformers").__version__,
            "scikit-learn": __import__("sklearn").__version__, "onnxruntime": __import__("onnxruntime").__version__,
            "platform": platform.platform()}


def verdicts(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each target: the measured figure, the target and whether it is met."""
    t, b, c = result["transformer"], result["baseline"], result["cold_start"]
    score = result["score"]["baseline"]
    rows = {
        "transformer_vs_default_pipeline": (t["ratio_vs_default_pipeline"], ">="),
        "transformer_vs_pipeline_bs64": (t["ratio_vs_pipeline_bs64"], ">="),
        "baseline_sentences_per_s": (b["sentences_per_s"]["stance.predict"], ">="),
        "import_seconds": (c["import_stance"]["median_s"], "<"),
        "first_baseline_predict_seconds": (c["first_predict_baseline"]["median_s"], "<"),
        "score_overhead": (score["overhead"], "<="),
    }
    out = {}
    for key, (value, op) in rows.items():
        target = TARGETS[key]
        met = value >= target if op == ">=" else value < target if op == "<" else value <= target
        out[key] = {"value": value, "target": f"{op} {target}", "met": bool(met)}
    return out


def _spread(times: dict[str, Any]) -> str:
    return f"{times['min_s']:.2f}-{times['max_s']:.2f} s"


def markdown(result: dict[str, Any]) -> str:
    """The README's Performance section body: one table, the ceilings, and how it was made."""
    t, b, c = result["transformer"], result["baseline"], result["cold_start"]
    s, lim, mem, v = result["score"], result["limit"], result["memory"], result["verdicts"]
    tr, br = t["sentences_per_s"], b["sentences_per_s"]
    raw_name = next(k for k in br if k.startswith("sklearn"))
    chosen = t["default_backend"]
    listed, small = t["times"]["list"], t["times"]["default_subset"]

    def ok(key: str) -> str:
        return "met" if v[key]["met"] else "**missed**"

    mem_runs = mem["runs"]
    lines = [
        "| measurement | stance (median; spread of rounds) | what a user would otherwise run | ratio | target |",
        "|---|---|---|---|---|",
        f"| transformer, {t['sentences']} lone sentences | `stance.predict` ({chosen}) {tr[f'stance.predict {chosen}']:.1f}/s; "
        f"{_spread(listed[f'stance.predict {chosen}'])} | `pipeline(batch_size=64)` {tr['pipeline batch_size=64']:.1f}/s; "
        f"{_spread(listed['pipeline batch_size=64'])} | {t['ratio_vs_pipeline_bs64']:.2f}x | "
        f">= {TARGETS['transformer_vs_pipeline_bs64']:g}x: {ok('transformer_vs_pipeline_bs64')} |",
        f"| transformer, {t['default_pipeline_sentences']} lone sentences | `stance.predict` ({chosen}) "
        f"{tr['stance.predict (default) (subset)']:.1f}/s; {_spread(small['stance.predict (default)'])} | "
        f"`pipeline()` defaults {tr['pipeline default (subset)']:.1f}/s; {_spread(small['pipeline default'])} | "
        f"{t['ratio_vs_default_pipeline']:.2f}x | >= {TARGETS['transformer_vs_default_pipeline']:g}x: "
        f"{ok('transformer_vs_default_pipeline')} |",
    ]
    for backend, speedup in t["backend_speedup_vs_torch_fp32"].items():
        key = f"stance.predict {backend}"
        mark = " (default)" if backend == chosen else ""
        lines.append(f"| transformer backend `{backend}`{mark}, {t['sentences']} sentences | {tr[key]:.1f}/s; "
                     f"{_spread(listed[key])} | torch fp32 {tr['stance.predict torch-fp32']:.1f}/s | {speedup:.2f}x | "
                     "accuracy: `experiments/results/backends/backends.md` |")
    lines.append(
        f"| baseline ({b['classifier']}), {b['sentences']} sentences | `stance.predict` "
        f"{br['stance.predict']:,.0f}/s; {_spread(b['times']['stance.predict'])} | sklearn `{raw_name.split()[1]}` "
        f"{br[raw_name]:,.0f}/s; {_spread(b['times'][raw_name])} | "
        f"{b['ratio_vs_raw']:.2f}x | >= 20,000/s: {ok('baseline_sentences_per_s')}; probabilities equal to "
        f"{b['max_abs_proba_diff_vs_raw']:.0e} |")
    for key, part in s.items():
        sp = part["sentences_per_s"]
        target = f"overhead <= 15%: {ok('score_overhead')}" if key == "baseline" else "(reference)"
        lines.append(f"| `stance score` JSONL, {part['model']}, {part['articles']} articles / {part['sentences']} "
                     f"sentences | {sp['stance score']:,.0f} sentences/s; "
                     f"{_spread(part['times']['stance score (write_scores)'])} | `stance.predict` on the list "
                     f"{sp['stance.predict']:,.0f}/s; {_spread(part['times']['stance.predict'])} | overhead "
                     f"{part['overhead']:+.1%} ({part['overhead_vs_predict_with_contexts']:+.1%} over predicting them "
                     f"with their contexts; segmenting is {part['segment_share_of_score']:.0%} of the time) | {target} |")
    lines += [
        f"| cold start: `import stance` | {c['import_stance']['median_s']:.3f} s | | | < 0.3 s: {ok('import_seconds')} |",
        f"| cold start: first baseline predict, loading included | {c['first_predict_baseline']['median_s']:.3f} s "
        f"| | | < 1 s: {ok('first_baseline_predict_seconds')} |",
        f"| cold start: first transformer predict, loading included | "
        f"{c['first_predict_transformer']['median_s']:.2f} s | transformers' tokenizer (imports torch): "
        f"{c['first_predict_transformer_hf_tokenizer']['median_s']:.2f} s | {c['tokenizer_speedup']:.2f}x faster | |",
        f"| peak RSS of `stance score` (baseline) | {mem_runs[0]['sentences']:,} sentences: "
        f"{mem_runs[0]['peak_rss_mib']:.0f} MiB; {mem_runs[-1]['sentences']:,}: {mem_runs[-1]['peak_rss_mib']:.0f} MiB "
        f"| | {mem['rss_growth']:.2f}x for {mem_runs[-1]['sentences'] / mem_runs[0]['sentences']:.1f}x the input | "
        "flat: " + ("met" if mem["rss_growth"] < 1.15 else "**missed**") + " |",
        "",
        f"Physical limit on {lim['threads']} threads: fp32 matmul {lim['fp32_matmul_gflops']:.0f} GFLOP/s (`torch.mm`), "
        f"int8 matmul {lim['int8_matmul_gops']:.0f} GOP/s (ONNX Runtime `MatMulInteger`); the encoder needs "
        f"{lim['flops_per_sentence']['total'] / 1e9:.2f} GFLOP per sentence at {lim['mean_tokens']:.1f} tokens "
        f"({lim['flops_per_sentence']['int8_part'] / lim['flops_per_sentence']['total']:.0%} of it int8 in the int8 "
        "backends). Share of the ceiling reached: "
        + "; ".join(f"`{b}` {x['achieved_sentences_per_s']:.1f}/s of {x['ceiling_sentences_per_s']:.0f}/s = "
                    f"{x['fraction']:.0%}" for b, x in lim["backends"].items()) + ".",
        "",
        f"Made by `make benchmark` (`python benchmarks/run.py`) in {result['total_seconds']:.0f} s, "
        f"{result.get('finished') or datetime_now()}: medians of {result['repeats']} rounds ({result.get('cheap_rounds', result['repeats'])} for the sub-second "
        "baseline and `stance score` rows) after a warm-up; in every "
        "round each side of a row runs once, in turn, on the same sentences (seed and supplement sentences, some "
        "behind varied attributions; articles of 15-40 of them), so load from other jobs falls on both sides. "
        f"Machine: {result['machine']['cpus']} CPUs ({result['machine']['cpu']}), Python {result['machine']['python']}, "
        f"torch {result['machine']['torch']}, transformers {result['machine']['transformers']}, onnxruntime "
        f"{result['machine'].get('onnxruntime', '?')}, {lim['threads']} threads. One-minute load average "
        f"{result['load_average_1min'][0]} before and {result['load_average_1min'][1]} after (transformer rows: "
        f"{t['load_average_1min'][0]} and {t['load_average_1min'][1]}). The transformer is the shipped "
        f"`{Path(t['model']).name}` (TF-IDF + a logistic head on frozen all-mpnet-base-v2, soft voting); the "
        "user's side runs `transformers.pipeline(\"feature-extraction\")` over the same encoder folder, pools and "
        f"applies the same saved head and TF-IDF member (its labels equal torch fp32's on "
        f"{t['label_agreement_fp32_with_pipeline']:.1%} of the sentences).",
    ]
    if result.get("stability"):
        lines += ["", "Two runs back to back (ratios must agree within 15 %):", "",
                  "| ratio | run 1 | run 2 | difference |", "|---|---|---|---|"]
        for key, row in result["stability"]["ratios"].items():
            lines.append(f"| {key} | {row['run_1']:.2f} | {row['run_2']:.2f} | {row['difference']:+.1%} |")
    return "\n".join(lines) + "\n"


def datetime_now() -> str:
    """Local date and time, to the minute."""
    return time.strftime("%Y-%m-%d %H:%M")


def run(quick: bool) -> dict[str, Any]:
    """Every measurement; returns the result dict (also printed line by line)."""
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    repeats = 2 if quick else 3
    # sub-second sides (baseline, stance score) get more rounds: their medians move with every hiccup
    cheap_rounds = 2 if quick else 9
    # sized for about 5 minutes on 2 shared cores; the default pipeline (one sentence per
    # forward pass) is by far the slowest side, hence its smaller subset
    n_baseline, n_transformer, n_default = (600, 48, 16) if quick else (5000, 160, 48)
    memory_sizes = (1000, 3000) if quick else (10_000, 50_000)
    score_sentences = (600, 60) if quick else (3000, 150)
    say(f"benchmark: load average {load_before:.2f}; {'quick' if quick else 'full'} sizes")

    baseline_dir, transformer_dir = baseline_model_dir(), shipped_transformer_dir()
    result: dict[str, Any] = {"repeats": repeats, "cheap_rounds": cheap_rounds, "quick": quick,
                              "baseline_model": str(baseline_dir), "transformer_model": str(transformer_dir)}
    # cold start first: before this process has torch in memory, so the page cache is the only help
    result["cold_start"] = bench_cold_start(baseline_dir, transformer_dir, repeats)
    result["baseline"] = bench_baseline(baseline_dir, benchmark_sentences(n_baseline), cheap_rounds)
    with tempfile.TemporaryDirectory(prefix="stance-bench-") as tmp:
        work = Path(tmp)
        result["score"] = {}
        for label, model_dir, size in (("baseline", baseline_dir, score_sentences[0]),
                                       ("transformer", transformer_dir, score_sentences[1])):
            records = generated_articles(size, seed=7)
            corpus = write_jsonl(work / f"score-{label}.jsonl", records)
            result["score"][label] = bench_score(model_dir, corpus, segmented_sentences(records), work,
                                                 cheap_rounds if label == "baseline" else repeats,
                                                 label, cli=label == "baseline")
        result["memory"] = bench_memory(baseline_dir, work, memory_sizes)
    sentences = benchmark_sentences(n_transformer)
    result["transformer"] = bench_transformer(transformer_dir, sentences, sentences[:n_default], repeats, THREADS)
    result["limit"] = bench_limit(transformer_dir, sentences, result["transformer"]["sentences_per_s"], THREADS)
    result["machine"] = machine()
    result["load_average_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    result["total_seconds"] = time.perf_counter() - started
    result["finished"] = datetime_now()
    result["verdicts"] = verdicts(result)
    return result


def ratios(result: dict[str, Any]) -> dict[str, float]:
    """The ratios a run reports (the figures that must hold still between runs)."""
    t = result["transformer"]
    out = {"transformer vs pipeline(batch_size=64)": t["ratio_vs_pipeline_bs64"],
           "transformer vs pipeline() defaults": t["ratio_vs_default_pipeline"],
           "baseline vs raw scikit-learn": result["baseline"]["ratio_vs_raw"],
           "stance score / stance.predict (baseline)": 1 + result["score"]["baseline"]["overhead"],
           "transformer cold start: transformers' tokenizer / tokenizer.json": result["cold_start"]["tokenizer_speedup"]}
    out.update({f"{b} vs torch-fp32": x for b, x in t["backend_speedup_vs_torch_fp32"].items() if b != "torch-fp32"})
    return out


def stability(first: dict[str, Any], second: dict[str, Any], tolerance: float = 0.15) -> dict[str, Any]:
    """Each ratio in two back-to-back runs and their relative difference; ``held`` if all are within ``tolerance``."""
    one, two = ratios(first), ratios(second)
    rows = {key: {"run_1": one[key], "run_2": two[key], "difference": two[key] / one[key] - 1} for key in one}
    return {"ratios": rows, "tolerance": tolerance,
            "held": all(abs(row["difference"]) <= tolerance for row in rows.values())}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (twice back to back with ``--runs 2``), print every figure, write JSON and Markdown."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small inputs, for a smoke run (results not written)")
    parser.add_argument("--runs", type=int, choices=(1, 2), default=2,
                        help="2: run everything twice back to back and report whether the ratios held within 15%%")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    results = [run(args.quick) for _ in range(args.runs)]
    result = results[0]
    if len(results) == 2:
        result["stability"] = stability(results[0], results[1])
        result["second_run"] = results[1]
    say("")
    for key, verdict in result["verdicts"].items():
        say(f"target {key}: {verdict['value']:.4g} (target {verdict['target']}) -> "
            f"{'met' if verdict['met'] else 'MISSED'}")
    if result.get("stability"):
        say(f"ratios held within 15% between the two runs: {result['stability']['held']}")
    text = markdown(result)
    if not args.quick:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "benchmark.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        (args.out / "benchmark.md").write_text(text, encoding="utf-8")
    say("")
    say(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
