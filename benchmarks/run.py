"""The performance benchmark of issue 7: prediction and batch scoring against what a user would otherwise write.

Every comparison runs both sides in this one process run, on the same inputs, after a warm-up,
and reports the median of several repeats (the sides take turns, so load from other processes
falls on both alike) and their ratio:

1. transformer ``stance.predict`` on a list vs ``transformers.pipeline("text-classification")``
   over the same saved Hugging Face folder, at its defaults and at ``batch_size=64``;
2. baseline ``stance.predict`` (compiled arrays) vs the same scikit-learn pipeline's ``predict_proba`` /
   ``decision_function`` (refitted: a saved baseline holds no scikit-learn objects), and how far
   their probabilities differ;
3. ``stance score`` (the library function the CLI calls, and the CLI itself) on a JSONL file of
   articles vs ``stance.predict`` on the same sentences as a list;
4. cold start in fresh subprocesses: ``import stance``, first baseline / transformer predict;
5. peak resident memory of ``stance score`` (baseline) on ~10k and ~50k sentence JSONL files;
6. the physical limit: sustained fp32 matmul rate, the transformer's FLOPs per sentence, and
   achieved throughput as a fraction of what that rate allows;
7. the opt-in int8 transformer vs fp32.

Writes ``benchmarks/results/benchmark.json`` and ``benchmark.md`` (the body of the README's
Performance section). Run: ``make benchmark`` or ``python benchmarks/run.py`` (under 10 minutes
on 2 cores; ``--quick`` for a smoke run with small inputs).
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
RESULTS = ROOT / "benchmarks" / "results"
CACHE = ROOT / "cache" / "benchmark"
FINETUNE_DIR = CACHE / "finetune"
BASELINE_DIR = CACHE / "baseline"
# torch threads for every timing (the machine's 2 cores); set here, the library leaves torch alone
THREADS = 2
PROBE = "Scanning every private message would break end-to-end encryption for everyone."

TARGETS = {
    "transformer_vs_default_pipeline": 2.0,
    "transformer_vs_pipeline_bs64": 1.0,
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


def finetuned_model_dir() -> Path:
    """A fine-tuned ``TransformerModel`` folder: ``models/transformer`` if it is one, else the benchmark's own.

    The benchmark's own is trained once (spec ``minilm-finetune``, seeds + supplement) into
    ``cache/benchmark/finetune`` and reused from then on.
    """
    from stance import paths

    shipped = paths.models_dir() / "transformer"
    config = shipped / "config.json"
    if config.exists() and json.loads(config.read_text()).get("family") == "transformer":
        return shipped
    if (FINETUNE_DIR / "config.json").exists():
        say(f"models/transformer is not a fine-tuned transformer; using {FINETUNE_DIR.relative_to(ROOT)}")
        return FINETUNE_DIR
    from stance.evaluation.shipping import train_and_save
    from stance.evaluation.specs import SEED, TRANSFORMER_SPECS

    say(f"models/transformer is not a fine-tuned transformer; training minilm-finetune into "
        f"{FINETUNE_DIR.relative_to(ROOT)} (once, ~2-3 min)")
    train_and_save(TRANSFORMER_SPECS[0], FINETUNE_DIR, extra="supplement", seed=SEED)
    return FINETUNE_DIR


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


def compare(
    sides: dict[str, Callable[[], Any]], repeats: int, warm: dict[str, Callable[[], Any]] | None = None
) -> dict[str, dict[str, Any]]:
    """Median seconds of every side over ``repeats`` rounds, after one warm-up call of each.

    ``warm`` gives cheaper warm-up calls (the same code on a few inputs) where a full round is
    slow. In every round each side runs once, in turn, so a burst of load elsewhere on the
    machine falls on all sides rather than on whichever happened to run then.
    """
    for fn in (warm or sides).values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(repeats):
        for name, fn in sides.items():
            times[name].append(timed(fn))
    return {name: {"median_s": statistics.median(t), "runs_s": [round(x, 4) for x in t]} for name, t in times.items()}


def rate(n: int, seconds: float) -> float:
    """Items per second."""
    return n / seconds if seconds > 0 else float("inf")


# ---------------------------------------------------------------- 1. transformer vs pipeline


def bench_transformer(model_dir: Path, sentences: list[str], default_sentences: list[str], repeats: int) -> dict[str, Any]:
    """``stance.predict`` (fp32 and int8) vs ``transformers.pipeline`` at default and ``batch_size=64``.

    The default pipeline (one sentence per forward pass) is slow, so it is timed on the first
    ``len(default_sentences)`` sentences and compared with ``stance.predict`` on that same subset.
    """
    import torch
    import transformers

    import stance

    # this benchmark process only: no per-load progress bars, the fixed thread count
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    torch.set_num_threads(THREADS)
    hf_dir = str(model_dir / "hf")
    pipe = transformers.pipeline("text-classification", model=hf_dir, device="cpu")
    stance.load(model_dir)
    stance.load(model_dir, quantize=True)
    few = sentences[:64]
    main = compare({
        "stance.predict": lambda: stance.predict(sentences, model=model_dir),
        "stance.predict int8": lambda: stance.predict(sentences, model=model_dir, quantize=True),
        "pipeline batch_size=64": lambda: pipe(sentences, batch_size=64),
    }, repeats, warm={
        "stance.predict": lambda: stance.predict(few, model=model_dir),
        "stance.predict int8": lambda: stance.predict(few, model=model_dir, quantize=True),
        "pipeline batch_size=64": lambda: pipe(few, batch_size=64),
    })
    small = compare({
        "stance.predict": lambda: stance.predict(default_sentences, model=model_dir),
        "pipeline default": lambda: pipe(default_sentences),
    }, repeats, warm={"pipeline default": lambda: pipe(default_sentences[:8])})
    # same labels? (the pipeline gives the top label; the int8 copy may differ on a few)
    ours = [p.label for p in stance.predict(sentences, model=model_dir)]
    theirs = [r["label"] for r in pipe(sentences, batch_size=64)]
    int8 = [p.label for p in stance.predict(sentences, model=model_dir, quantize=True)]
    n, k = len(sentences), len(default_sentences)
    out = {
        "sentences": n,
        "default_pipeline_sentences": k,
        "times": {"list": main, "default_subset": small},
        "sentences_per_s": {
            "stance.predict": rate(n, main["stance.predict"]["median_s"]),
            "stance.predict int8": rate(n, main["stance.predict int8"]["median_s"]),
            "pipeline batch_size=64": rate(n, main["pipeline batch_size=64"]["median_s"]),
            "pipeline default": rate(k, small["pipeline default"]["median_s"]),
            "stance.predict (default subset)": rate(k, small["stance.predict"]["median_s"]),
        },
        "ratio_vs_default_pipeline": small["pipeline default"]["median_s"] / small["stance.predict"]["median_s"],
        "ratio_vs_pipeline_bs64": main["pipeline batch_size=64"]["median_s"] / main["stance.predict"]["median_s"],
        "int8_speedup": main["stance.predict"]["median_s"] / main["stance.predict int8"]["median_s"],
        "label_agreement_with_pipeline": sum(a == b for a, b in zip(ours, theirs)) / n,
        "label_agreement_int8": sum(a == b for a, b in zip(ours, int8)) / n,
    }
    rates = out["sentences_per_s"]
    say(f"[1] transformer, {n} sentences: stance.predict {rates['stance.predict']:.1f}/s, pipeline(batch_size=64) "
        f"{rates['pipeline batch_size=64']:.1f}/s -> ratio {out['ratio_vs_pipeline_bs64']:.2f}x (target >= 1)")
    say(f"[1] transformer, {k} sentences: stance.predict {rates['stance.predict (default subset)']:.1f}/s, "
        f"pipeline(default) {rates['pipeline default']:.1f}/s -> ratio {out['ratio_vs_default_pipeline']:.2f}x "
        "(target >= 2)")
    say(f"[7] int8 stance.predict {rates['stance.predict int8']:.1f}/s -> {out['int8_speedup']:.2f}x fp32; labels agree "
        f"on {out['label_agreement_int8']:.1%}; fp32 labels agree with the pipeline on "
        f"{out['label_agreement_with_pipeline']:.1%}")
    return out


# ---------------------------------------------------------------- 2. baseline vs raw scikit-learn


def raw_sklearn_pipeline(model_dir: Path) -> Any:
    """The scikit-learn pipeline behind a saved baseline, refitted on the data its config names.

    A saved baseline holds only the compiled arrays (no scikit-learn objects), so the pipeline a
    user would call is fitted again with the same parameters on the same (hash-checked) data.
    """
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
    return TfidfModel(**config["params"]).fit(texts, labels, contexts).pipeline_


def bench_baseline(model_dir: Path, sentences: list[str], repeats: int) -> dict[str, Any]:
    """Baseline ``stance.predict`` (compiled arrays) vs the same scikit-learn pipeline called directly."""
    import numpy as np

    import stance
    from stance.models.base import expand_proba
    from stance.models.tfidf_compiled import softmax

    model = stance.load(model_dir)
    raw = raw_sklearn_pipeline(model_dir)
    # what a user of the raw pipeline would call for probabilities (LinearSVC has only margins)
    raw_call = raw.predict_proba if hasattr(raw, "predict_proba") and model.classifier == "logreg" else raw.decision_function
    times = compare({
        "stance.predict": lambda: stance.predict(sentences, model=model_dir),
        f"sklearn {raw_call.__name__}": lambda: raw_call(sentences),
    }, repeats)
    n = len(sentences)
    ours, theirs = (v["median_s"] for v in times.values())
    # same numbers: the compiled path against the pipeline's own probabilities (softmax of SVM margins)
    present = [int(c) for c in raw.named_steps["classifier"].classes_]
    scores = raw_call(sentences)
    if raw_call.__name__ == "decision_function":
        scores = softmax(np.stack([-scores, scores], axis=1) if scores.ndim == 1 else scores)
    max_diff = float(np.abs(model.predict_proba(sentences) - expand_proba(scores, present)).max())
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

    def score() -> None:
        write_scores(read_articles([corpus]), scoring, work / f"score-{label}", "jsonl", force=True)

    few = corpus.with_name(f"warm-{label}.jsonl")
    few.write_text("".join(corpus.read_text(encoding="utf-8").splitlines(keepends=True)[:2]), encoding="utf-8")
    times = compare({"stance score (write_scores)": score,
                     "stance.predict": lambda: stance.predict(sentences, model=model_dir)}, repeats,
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
        "segment_seconds": segment_seconds,
        "segment_share_of_score": segment_seconds / scored,
    }
    say(f"[3] {label}: stance score {rate(n, scored):,.0f} sentences/s vs stance.predict {rate(n, listed):,.0f}/s -> "
        f"overhead {out['overhead']:+.1%} (target <= +15%); segmenting alone takes {segment_seconds:.2f} s "
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


def fresh_seconds(code: str, repeats: int) -> dict[str, Any]:
    """Median in-process seconds that ``code`` prints (a float on its last line), each in a fresh interpreter.

    One unrecorded run first, so files are in the page cache for all recorded runs.
    """
    values = []
    for i in range(repeats + 1):
        done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT)
        if i:
            values.append(float(done.stdout.strip().splitlines()[-1]))
    return {"median_s": statistics.median(values), "runs_s": [round(v, 4) for v in values]}


def bench_cold_start(baseline_dir: Path, transformer_dir: Path, repeats: int) -> dict[str, Any]:
    """``import stance``; first ``stance.predict`` (loading included) with the baseline and the transformer."""
    clock = "import time; t0 = time.perf_counter()\n"
    out = {
        "import_stance": fresh_seconds(
            clock + "import sys, stance\nassert 'torch' not in sys.modules, 'import stance imported torch'\n"
            "print(time.perf_counter() - t0)", repeats),
        "first_predict_baseline": fresh_seconds(
            clock + f"import stance\nstance.predict({PROBE!r}, model={str(baseline_dir)!r})\n"
            "print(time.perf_counter() - t0)", repeats),
        "first_predict_transformer": fresh_seconds(
            clock + f"import stance\nstance.predict({PROBE!r}, model={str(transformer_dir)!r})\n"
            "print(time.perf_counter() - t0)", repeats),
    }
    say(f"[4] cold start: import stance {out['import_stance']['median_s']:.3f} s (target < 0.3), first baseline "
        f"predict {out['first_predict_baseline']['median_s']:.3f} s (target < 1), first transformer predict "
        f"{out['first_predict_transformer']['median_s']:.3f} s (loading included, torch import too)")
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


# ---------------------------------------------------------------- 6. physical limit


def matmul_gflops(size: int, threads: int, seconds: float = 2.0) -> float:
    """Sustained fp32 GFLOP/s of ``size``-square ``torch.mm`` on ``threads`` threads (2 n^3 FLOPs each)."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    out = torch.empty(size, size)
    torch.mm(a, b, out=out)  # warm-up: allocator, kernel selection
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        torch.mm(a, b, out=out)
        count += 1
    return 2 * size**3 * count / (time.perf_counter() - started) / 1e9


def flops_per_sentence(config: dict[str, Any], tokens: float) -> float:
    """Forward-pass FLOPs of a BERT-style sequence classifier on one sequence of ``tokens`` tokens.

    With L tokens, hidden size H, intermediate size I, N layers and C labels, counting a
    multiply-add as 2 FLOPs:

    * per layer, the Q, K, V and output projections: 4 * 2*L*H*H = 8 L H^2;
    * per layer, the feed-forward block (H -> I -> H): 2 * 2*L*H*I = 4 L H I;
    * per layer, attention scores Q K^T and the weighted sum of V (all heads together): 2 * 2*L*L*H = 4 L^2 H;
    * once, the pooler (one token, H -> H) and the classifier (H -> C): 2 H^2 + 2 H C.

    Embedding look-ups, LayerNorm, softmax, GELU and biases are O(L H) and left out (under 1% here).
    """
    h, inter, n_layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    labels = len(config.get("id2label") or {}) or 3
    per_layer = 8 * tokens * h * h + 4 * tokens * h * inter + 4 * tokens * tokens * h
    return n_layers * per_layer + 2 * h * h + 2 * h * labels


def token_lengths(model_dir: Path, sentences: Sequence[str]) -> list[int]:
    """Tokens per chunk (special tokens included) as ``TransformerModel.predict_proba`` feeds the network."""
    import stance
    from stance.models import encoder

    model = stance.load(model_dir)
    chunks, _ = encoder.tokenize_chunks(model.tokenizer_, sentences, model.max_length)
    return [len(c) for c in chunks]


def bench_limit(model_dir: Path, sentences: Sequence[str], achieved_per_s: float, int8_per_s: float) -> dict[str, Any]:
    """Matmul rate, FLOPs per sentence at the mean token length, and achieved fraction of the rate."""
    config = json.loads((model_dir / "hf" / "config.json").read_text())
    lengths = token_lengths(model_dir, sentences)
    mean_tokens = sum(lengths) / len(lengths)
    per_sentence = flops_per_sentence(config, mean_tokens) * len(lengths) / len(sentences)
    threads = THREADS
    gflops = {str(size): matmul_gflops(size, threads) for size in (1024, 2048)}
    best = max(gflops.values())
    ceiling = best * 1e9 / per_sentence
    out = {
        "threads": threads,
        "matmul_gflops": gflops,
        "mean_tokens": mean_tokens,
        "chunks_per_sentence": len(lengths) / len(sentences),
        "flops_per_sentence": per_sentence,
        "ceiling_sentences_per_s": ceiling,
        "achieved_sentences_per_s": achieved_per_s,
        "achieved_fraction": achieved_per_s / ceiling,
        "achieved_gflops": achieved_per_s * per_sentence / 1e9,
        "int8_achieved_fraction_of_fp32_ceiling": int8_per_s / ceiling,
        "model_config": {k: config[k] for k in ("hidden_size", "intermediate_size", "num_hidden_layers",
                                                 "num_attention_heads")},
    }
    say(f"[6] fp32 matmul on {threads} threads: " + ", ".join(f"{k}^2 {v:.1f} GFLOP/s" for k, v in gflops.items())
        + f"; transformer {per_sentence / 1e6:.0f} MFLOP/sentence at {mean_tokens:.1f} mean tokens -> ceiling "
        f"{ceiling:.0f} sentences/s; achieved {achieved_per_s:.1f}/s = {out['achieved_fraction']:.1%} "
        f"({out['achieved_gflops']:.1f} GFLOP/s); int8 reaches {out['int8_achieved_fraction_of_fp32_ceiling']:.1%} "
        "of the fp32 ceiling")
    return out


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
            "scikit-learn": __import__("sklearn").__version__, "platform": platform.platform()}


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


def markdown(result: dict[str, Any]) -> str:
    """The README's Performance section body: one table and how it was made."""
    t, b, c = result["transformer"], result["baseline"], result["cold_start"]
    s, lim, mem, v = result["score"], result["limit"], result["memory"], result["verdicts"]
    tr, br = t["sentences_per_s"], b["sentences_per_s"]
    raw_name = next(k for k in br if k.startswith("sklearn"))

    def ok(key: str) -> str:
        return "met" if v[key]["met"] else "**missed**"

    mem_runs = mem["runs"]
    lines = [
        "| measurement | stance | what a user would otherwise run | ratio | target |",
        "|---|---|---|---|---|",
        f"| transformer, {t['sentences']} sentences | `stance.predict` {tr['stance.predict']:.1f}/s | "
        f"`pipeline(batch_size=64)` {tr['pipeline batch_size=64']:.1f}/s | {t['ratio_vs_pipeline_bs64']:.2f}x | "
        f">= 1x: {ok('transformer_vs_pipeline_bs64')} |",
        f"| transformer, {t['default_pipeline_sentences']} sentences | `stance.predict` "
        f"{tr['stance.predict (default subset)']:.1f}/s | `pipeline()` defaults {tr['pipeline default']:.1f}/s | "
        f"{t['ratio_vs_default_pipeline']:.2f}x | >= 2x: {ok('transformer_vs_default_pipeline')} |",
        f"| transformer int8 (opt-in `quantize=True`) | {tr['stance.predict int8']:.1f}/s | fp32 "
        f"{tr['stance.predict']:.1f}/s | {t['int8_speedup']:.2f}x | labels agree on {t['label_agreement_int8']:.1%}"
        f"{quantisation_note()} |",
        f"| baseline ({b['classifier']}), {b['sentences']} sentences | `stance.predict` "
        f"{br['stance.predict']:,.0f}/s | sklearn `{raw_name.split()[1]}` {br[raw_name]:,.0f}/s | "
        f"{b['ratio_vs_raw']:.2f}x | >= 20,000/s: {ok('baseline_sentences_per_s')}; probabilities equal to "
        f"{b['max_abs_proba_diff_vs_raw']:.0e} |",
    ]
    for key, part in s.items():
        sp = part["sentences_per_s"]
        target = f"overhead <= 15%: {ok('score_overhead')}" if key == "baseline" else "(reference)"
        lines.append(f"| `stance score` JSONL, {part['model']}, {part['articles']} articles / {part['sentences']} "
                     f"sentences | {sp['stance score']:,.0f} sentences/s | `stance.predict` on the list "
                     f"{sp['stance.predict']:,.0f}/s | overhead {part['overhead']:+.1%} | {target} |")
    lines += [
        f"| cold start: `import stance` | {c['import_stance']['median_s']:.3f} s | | | < 0.3 s: {ok('import_seconds')} |",
        f"| cold start: first baseline predict, loading included | {c['first_predict_baseline']['median_s']:.3f} s "
        f"| | | < 1 s: {ok('first_baseline_predict_seconds')} |",
        f"| cold start: first transformer predict, loading included | "
        f"{c['first_predict_transformer']['median_s']:.2f} s | | | |",
        f"| peak RSS of `stance score` (baseline) | {mem_runs[0]['sentences']:,} sentences: "
        f"{mem_runs[0]['peak_rss_mib']:.0f} MiB; {mem_runs[-1]['sentences']:,}: {mem_runs[-1]['peak_rss_mib']:.0f} MiB "
        f"| | {mem['rss_growth']:.2f}x for {mem_runs[-1]['sentences'] / mem_runs[0]['sentences']:.1f}x the input | "
        "flat: " + ("met" if mem["rss_growth"] < 1.15 else "**missed**") + " |",
        f"| physical limit: fp32 matmul {max(lim['matmul_gflops'].values()):.0f} GFLOP/s, "
        f"{lim['flops_per_sentence'] / 1e6:.0f} MFLOP/sentence at {lim['mean_tokens']:.1f} tokens | "
        f"{lim['achieved_sentences_per_s']:.1f}/s achieved | ceiling {lim['ceiling_sentences_per_s']:.0f}/s | "
        f"{lim['achieved_fraction']:.0%} of the ceiling | |",
        "",
        f"Made by `make benchmark` (`python benchmarks/run.py`) in {result['total_seconds']:.0f} s, "
        f"{result.get('finished') or datetime_now()}: medians of {result['repeats']} repeats after a warm-up, both sides of each row in the "
        f"same run on the same sentences (seed and supplement sentences, some behind varied attributions; "
        f"articles of 15-40 of them). Machine: {result['machine']['cpus']} CPUs ({result['machine']['cpu']}), "
        f"Python {result['machine']['python']}, torch {result['machine']['torch']}, transformers "
        f"{result['machine']['transformers']}, {lim['threads']} torch threads. One-minute load average "
        f"{result['load_average_1min'][0]} before and {result['load_average_1min'][1]} after (other jobs share "
        "the CPUs, so absolute figures vary; the ratios are what count). Transformer: a fine-tuned MiniLM-L6 "
        f"(`{result['transformer_model']}`); int8 LODO macro-F1 cost: see `benchmarks/results/quantisation.md`.",
    ]
    return "\n".join(lines) + "\n"


def quantisation_note() -> str:
    """The LODO macro-F1 cost of int8 from ``benchmarks/quantisation.py``'s results, if they exist."""
    path = RESULTS / "quantisation.json"
    if not path.exists():
        return "; LODO cost not measured yet (`python benchmarks/quantisation.py`)"
    q = json.loads(path.read_text())
    verdict = "within" if q["int8_acceptable"] else "more than"
    return (f"; LODO macro-F1 {q['macro_f1']['fp32']:.3f} -> {q['macro_f1']['int8']:.3f} ({verdict} the 0.01 "
            f"allowed{'' if q['int8_acceptable'] else ': stays opt-in, fp32 is the default'})")


def datetime_now() -> str:
    """Local date and time, to the minute."""
    return time.strftime("%Y-%m-%d %H:%M")


def run(quick: bool) -> dict[str, Any]:
    """Every measurement; returns the result dict (also printed line by line)."""
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    repeats = 2 if quick else 3
    # sized for under 10 minutes on 2 shared cores; the default pipeline (one sentence per
    # forward pass) is by far the slowest side, hence its smaller subset
    n_baseline, n_transformer, n_default = (600, 128, 32) if quick else (5000, 512, 64)
    memory_sizes = (1000, 3000) if quick else (10_000, 50_000)
    score_sentences = (600, 100) if quick else (3000, 300)
    say(f"benchmark: load average {load_before:.2f}; {'quick' if quick else 'full'} sizes")

    baseline_dir, transformer_dir = baseline_model_dir(), finetuned_model_dir()
    result: dict[str, Any] = {"repeats": repeats, "quick": quick,
                              "baseline_model": str(baseline_dir.relative_to(ROOT)),
                              "transformer_model": str(transformer_dir.relative_to(ROOT))}
    # cold start first: before this process has torch in memory, so the page cache is the only help
    result["cold_start"] = bench_cold_start(baseline_dir, transformer_dir, repeats)
    result["baseline"] = bench_baseline(baseline_dir, benchmark_sentences(n_baseline), repeats)
    with tempfile.TemporaryDirectory(prefix="stance-bench-") as tmp:
        work = Path(tmp)
        result["score"] = {}
        for label, model_dir, size in (("baseline", baseline_dir, score_sentences[0]),
                                       ("transformer", transformer_dir, score_sentences[1])):
            records = generated_articles(size, seed=7)
            corpus = write_jsonl(work / f"score-{label}.jsonl", records)
            result["score"][label] = bench_score(model_dir, corpus, segmented_sentences(records), work, repeats,
                                                 label, cli=label == "baseline")
        result["memory"] = bench_memory(baseline_dir, work, memory_sizes)
    sentences = benchmark_sentences(n_transformer)
    result["transformer"] = bench_transformer(transformer_dir, sentences, sentences[:n_default], repeats)
    rates = result["transformer"]["sentences_per_s"]
    result["limit"] = bench_limit(transformer_dir, sentences, rates["stance.predict"], rates["stance.predict int8"])
    result["machine"] = machine()
    result["load_average_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    result["total_seconds"] = time.perf_counter() - started
    result["finished"] = datetime_now()
    result["verdicts"] = verdicts(result)
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print every figure, write JSON and Markdown."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small inputs, for a smoke run (results not written)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    result = run(args.quick)
    say("")
    for key, verdict in result["verdicts"].items():
        say(f"target {key}: {verdict['value']:.4g} (target {verdict['target']}) -> "
            f"{'met' if verdict['met'] else 'MISSED'}")
    say(f"load average (1 min) before/after: {result['load_average_1min']}; total {result['total_seconds']:.0f} s")
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
