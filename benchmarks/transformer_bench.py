"""The shipped transformer against what a user would otherwise run, each backend, and the physical limit.

Used by ``benchmarks/run.py``. The shipped ``transformer`` is a soft-voting ensemble of the TF-IDF
model and a logistic head on frozen all-mpnet-base-v2 embeddings. The user's version of the same
saved model: ``transformers.pipeline("feature-extraction")`` over the same encoder folder (at its
defaults, one sentence per forward pass, and at ``batch_size=64``), mean pooling over each
sentence's own tokens, L2 normalisation, then the saved head and the average with the TF-IDF
member's probabilities, which gives the same labels. Sentences are lone (no context) on both sides.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from stance.models.backends import BACKENDS


def _members(model: Any) -> tuple[Any, list[Any], np.ndarray]:
    """The frozen-encoder member, the other members and the normalised weights (in member order)."""
    members = list(getattr(model, "models_", [model]))
    weights = np.asarray(getattr(model, "weights", None) or [1.0] * len(members), dtype=float)
    neural = [i for i, m in enumerate(members) if hasattr(m, "head_") and hasattr(m, "encoder")]
    if len(neural) != 1:
        raise SystemExit("the benchmark expects the shipped transformer to hold one frozen-encoder member")
    return members[neural[0]], [m for i, m in enumerate(members) if i != neural[0]], weights / weights.sum()


def user_pipeline(model: Any, threads: int) -> Callable[[list[str], int | None], list[int]]:
    """``run(sentences, batch_size)`` -> label ids, the way a user would compute the saved model's labels
    with ``transformers.pipeline`` (``batch_size=None``: the pipeline's default)."""
    import torch
    import transformers

    from stance.models import hf

    head_member, _, weights = _members(model)
    torch.set_num_threads(threads)  # this benchmark process only
    transformers.utils.logging.set_verbosity_error()
    pipe = transformers.pipeline("feature-extraction", model=str(hf.encoder_dir(head_member.encoder)), device="cpu")
    tokenizer = pipe.tokenizer

    def run(sentences: list[str], batch_size: int | None) -> list[int]:
        options = {"return_tensors": True, **({"batch_size": batch_size} if batch_size else {})}
        outputs = pipe(sentences, **options)
        # a batched call pads each item to the batch's longest: pool over the sentence's own tokens only
        lengths = [len(ids) for ids in tokenizer(sentences)["input_ids"]]
        pooled = np.stack([out[0, :n].mean(0).numpy() for out, n in zip(outputs, lengths)])
        pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
        features = np.hstack([pooled, np.zeros_like(pooled)]) if head_member.use_context else pooled
        members = list(getattr(model, "models_", [model]))
        mean = sum(w * (head_member.head_.predict_proba(features) if m is head_member else m.predict_proba(sentences))
                   for w, m in zip(weights, members))
        return list(np.argmax(mean, axis=1))

    return run


def uncached_in_place(model: Any) -> None:
    """Turn off the embedding cache of ``model`` and its members, in place, so the rounds time the encoder
    and not reads of cached vectors.

    In place on purpose: ``stance.load`` returns the object the model store keeps for a folder and
    backend, the very one ``stance.predict`` then runs; a copy (:func:`stance.models.embedding.without_embedding_cache`) would
    leave ``stance.predict`` reading the cache (torch-fp32, the one backend that has it, then measured
    thousands of sentences per second).
    """
    for member in [model, *getattr(model, "models_", [])]:
        if hasattr(member, "cache"):
            member.cache = False


def interleaved(sides: dict[str, Callable[[], Any]], rounds: int, warm: dict[str, Callable[[], Any]] | None = None
                ) -> dict[str, dict[str, Any]]:
    """Median, spread and every round's seconds of each side; each side runs once per round, in turn
    (:func:`stance.evaluation.backends.interleaved_seconds`)."""
    from stance.evaluation.backends import interleaved_seconds

    times = interleaved_seconds(sides, rounds, warm)
    return {name: {"median_s": statistics.median(t), "min_s": min(t), "max_s": max(t),
                   "runs_s": [round(x, 4) for x in t]} for name, t in times.items()}


def bench_transformer(model_dir: Path, sentences: list[str], default_sentences: list[str], rounds: int,
                      threads: int) -> dict[str, Any]:
    """``stance.predict`` on each backend (the default marked) vs the user's pipeline, interleaved."""
    import stance

    default = stance.load(model_dir)
    variants = {backend: stance.load(model_dir, backend=backend) for backend in BACKENDS}
    for variant in [default, *variants.values()]:
        uncached_in_place(variant)
        variant.threads = threads
    chosen = next(m.backend for m in [default, *getattr(default, "models_", [])] if getattr(m, "backend", None))
    user = user_pipeline(default, threads)
    load_before = os.getloadavg()[0]
    few = sentences[:16]
    sides: dict[str, Callable[[], Any]] = {
        f"stance.predict {b}": (lambda b=b: stance.predict(sentences, model=model_dir, backend=b)) for b in BACKENDS}
    sides["pipeline batch_size=64"] = lambda: user(sentences, 64)
    warm = {f"stance.predict {b}": (lambda b=b: stance.predict(few, model=model_dir, backend=b)) for b in BACKENDS}
    warm["pipeline batch_size=64"] = lambda: user(few, 64)
    listed = interleaved(sides, rounds, warm)
    small = interleaved({
        "stance.predict (default)": lambda: stance.predict(default_sentences, model=model_dir),
        "pipeline default": lambda: user(default_sentences, None),
    }, rounds, warm={"pipeline default": lambda: user(default_sentences[:4], None)})
    load_after = os.getloadavg()[0]
    ours = [stance.LABELS.index(p.label) for p in stance.predict(sentences, model=model_dir, backend="torch-fp32")]
    theirs = user(sentences, 64)
    n, k = len(sentences), len(default_sentences)
    rates = {name: n / t["median_s"] for name, t in listed.items()}
    rates.update({f"{name} (subset)": k / t["median_s"] for name, t in small.items()})
    out = {
        "model": str(model_dir), "default_backend": chosen, "sentences": n, "default_pipeline_sentences": k,
        "times": {"list": listed, "default_subset": small}, "sentences_per_s": rates,
        "ratio_vs_pipeline_bs64": listed["pipeline batch_size=64"]["median_s"]
        / listed[f"stance.predict {chosen}"]["median_s"],
        "ratio_vs_default_pipeline": small["pipeline default"]["median_s"] / small["stance.predict (default)"]["median_s"],
        "backend_speedup_vs_torch_fp32": {b: listed["stance.predict torch-fp32"]["median_s"]
                                          / listed[f"stance.predict {b}"]["median_s"] for b in BACKENDS},
        "label_agreement_fp32_with_pipeline": float(np.mean(np.asarray(ours) == np.asarray(theirs))),
        "load_average_1min": [round(load_before, 2), round(load_after, 2)],
    }
    print(f"[1] transformer ({chosen}) {rates[f'stance.predict {chosen}']:.1f}/s vs pipeline(batch_size=64) "
          f"{rates['pipeline batch_size=64']:.1f}/s -> {out['ratio_vs_pipeline_bs64']:.2f}x; on {k}: "
          f"{rates['stance.predict (default) (subset)']:.1f}/s vs pipeline() {rates['pipeline default (subset)']:.1f}/s -> "
          f"{out['ratio_vs_default_pipeline']:.2f}x; fp32 labels equal the pipeline's on "
          f"{out['label_agreement_fp32_with_pipeline']:.1%}", flush=True)
    return out


# ---------------------------------------------------------------- physical limit


def fp32_matmul_gflops(size: int, threads: int, seconds: float = 2.0) -> float:
    """Sustained fp32 GFLOP/s of ``size``-square ``torch.mm`` on ``threads`` threads (2 n^3 FLOPs each)."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    out = torch.empty(size, size)
    torch.mm(a, b, out=out)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        torch.mm(a, b, out=out)
        count += 1
    return 2 * size**3 * count / (time.perf_counter() - started) / 1e9


def int8_matmul_gops(size: int, threads: int, seconds: float = 2.0) -> float:
    """Sustained int8 GOP/s (multiply-add = 2 ops) of ONNX Runtime's ``MatMulInteger`` (uint8 x int8 -> int32),
    the kernel the ``onnx-int8`` backend runs, on a ``size``-square product and ``threads`` threads."""
    import onnxruntime
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.integers(-64, 64, (size, size), dtype=np.int8), "B")
    graph = helper.make_graph([helper.make_node("MatMulInteger", ["A", "B"], ["Y"])], "int8-matmul",
                              [helper.make_tensor_value_info("A", TensorProto.UINT8, [size, size])],
                              [helper.make_tensor_value_info("Y", TensorProto.INT32, [size, size])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    a = rng.integers(0, 255, (size, size), dtype=np.uint8)
    session.run(None, {"A": a})
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        session.run(None, {"A": a})
        count += 1
    return 2 * size**3 * count / (time.perf_counter() - started) / 1e9


def encoder_flops(config: dict[str, Any], tokens: float) -> dict[str, float]:
    """Forward FLOPs of a BERT-style encoder on one sequence of ``tokens`` tokens, split by what
    the int8 recipe quantises (:mod:`stance.models.backends`).

    Hidden size H, intermediate size I, N layers, L tokens, a multiply-add = 2 FLOPs; per layer:
    Q, K, V and output projections 8 L H^2 and the feed-forward input projection 2 L H I (int8 in
    the int8 backends); the feed-forward output projection 2 L H I and the attention products
    Q K^T and weights x V, 4 L^2 H (fp32 in every backend). Embeddings, LayerNorm, softmax, GELU
    and pooling are O(L H) and left out.
    """
    h, inter, n = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    quantised = n * (8 * tokens * h * h + 2 * tokens * h * inter)
    fp32 = n * (2 * tokens * h * inter + 4 * tokens * tokens * h)
    return {"int8_part": quantised, "fp32_part": fp32, "total": quantised + fp32}


def bench_limit(model_dir: Path, sentences: Sequence[str], rates: dict[str, float], threads: int) -> dict[str, Any]:
    """Matmul ceilings (fp32 and int8), FLOPs per sentence and each backend's fraction of its ceiling.

    A backend's ceiling in sentences/s assumes every multiply runs at the sustained matmul rate of
    its precision: fp32 backends FLOPs/fp32-rate, int8 backends int8-part/int8-rate + fp32-part/fp32-rate.
    """
    import json

    import stance
    from stance.models import encoder, hf

    head_member, _, _ = _members(stance.load(model_dir))
    config = json.loads((hf.encoder_dir(head_member.encoder) / "config.json").read_text())
    chunks, _ = encoder.tokenize_chunks(encoder.packaged_tokenizer(head_member.encoder), sentences,
                                        encoder.ENCODE_MAX_LENGTH)
    lengths = [len(c) for c in chunks]
    # attention is quadratic in length: average the FLOPs over the real lengths, not at the mean length
    per_chunk = [encoder_flops(config, length) for length in lengths]
    flops = {key: sum(f[key] for f in per_chunk) / len(sentences) for key in ("int8_part", "fp32_part", "total")}
    fp32_rate = max(fp32_matmul_gflops(size, threads) for size in (1024, 2048)) * 1e9
    int8_rate = max(int8_matmul_gops(size, threads) for size in (1024, 2048)) * 1e9
    ceilings = {}
    for backend in BACKENDS:
        seconds = (flops["total"] / fp32_rate if backend.endswith("fp32")
                   else flops["int8_part"] / int8_rate + flops["fp32_part"] / fp32_rate)
        achieved = rates[f"stance.predict {backend}"]
        ceilings[backend] = {"ceiling_sentences_per_s": 1 / seconds, "achieved_sentences_per_s": achieved,
                             "fraction": achieved * seconds}
    out = {"threads": threads, "fp32_matmul_gflops": fp32_rate / 1e9, "int8_matmul_gops": int8_rate / 1e9,
           "mean_tokens": float(np.mean(lengths)), "flops_per_sentence": flops, "backends": ceilings}
    print(f"[6] fp32 matmul {fp32_rate / 1e9:.0f} GFLOP/s, int8 matmul {int8_rate / 1e9:.0f} GOP/s; "
          f"{flops['total'] / 1e9:.2f} GFLOP/sentence at {out['mean_tokens']:.1f} tokens; "
          + ", ".join(f"{b} {c['fraction']:.0%} of {c['ceiling_sentences_per_s']:.0f}/s" for b, c in ceilings.items()),
          flush=True)
    return out
