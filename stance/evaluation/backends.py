"""Which inference backend a shipped model runs on: accuracy of each on every held-out set, speed
side by side, and the declared rule that picks the default.

The rule (issue 19, declared in the README before it was run): among the backends of
:data:`stance.models.backends.BACKENDS`, the fastest one whose score on **each** held-out set is
within :data:`MAX_SCORE_CHANGE` of torch fp32's (macro-F1 on the challenge set, the contrast test
and the article test's sentences; the pass rate on the behavioural suite) and whose labels agree
with torch fp32's on at least :data:`MIN_AGREEMENT` of all those sentences becomes the default.
torch fp32 always qualifies. Speed is measured on lone sentences (no context), every backend in
every round in turn (:func:`interleaved_seconds`), so load from other processes falls on all alike.
"""

from __future__ import annotations

import copy
import os
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from stance.data.articles import load_set
from stance.data.loaders import challenge_rows, contrast_test_rows, seed_rows
from stance.evaluation.behavioural import run_suite
from stance.evaluation.metrics import label_ids, macro_f1
from stance.models import StanceModel
from stance.models.backends import BACKENDS, TRAINING_BACKEND
from stance.models.embedding import without_embedding_cache

MAX_SCORE_CHANGE = 0.01
MIN_AGREEMENT = 0.985
SETS = ("challenge", "contrast_test", "article_test", "behavioural")


class _Recorder:
    """A model that remembers the probabilities it returned (the behavioural suite's predictions)."""

    def __init__(self, model: StanceModel) -> None:
        self.model = model
        self.proba = np.zeros((0, 3))

    def predict_proba(self, texts: Sequence[str], contexts: Sequence[str] | None = None) -> np.ndarray:
        self.proba = self.model.predict_proba(texts, contexts)
        return self.proba


def held_out_predictions(model: StanceModel) -> dict[str, dict[str, Any]]:
    """Predicted label ids and the set's score for each of :data:`SETS`.

    ``{set: {"pred": (n,) int array, "score": float, "metric": str, "n": int}}``; the article
    test's sentences are read with their contexts, as ``stance score`` reads them.
    """
    out: dict[str, dict[str, Any]] = {}
    for name, rows in (("challenge", challenge_rows()), ("contrast_test", contrast_test_rows())):
        y = label_ids([r["label"] for r in rows])
        pred = model.predict_proba([r["text"] for r in rows]).argmax(1)
        out[name] = {"pred": pred, "score": macro_f1(y, pred), "metric": "macro-F1", "n": len(rows)}
    rows, _ = load_set("article_test")
    y = label_ids([r["label"] for r in rows])
    pred = model.predict_proba([r["text"] for r in rows], [r["context"] for r in rows]).argmax(1)
    out["article_test"] = {"pred": pred, "score": macro_f1(y, pred), "metric": "macro-F1 (sentences in context)",
                           "n": len(rows)}
    recorder = _Recorder(model)
    suite = run_suite(recorder)
    out["behavioural"] = {"pred": recorder.proba.argmax(1), "score": suite["overall"]["pass_rate"],
                          "metric": "pass rate", "n": int(suite["n_texts"])}
    return out


def interleaved_seconds(sides: dict[str, Callable[[], Any]], rounds: int,
                        warm: dict[str, Callable[[], Any]] | None = None) -> dict[str, list[float]]:
    """Wall seconds of each side in each of ``rounds`` rounds; every side runs once per round, in turn,
    after one untimed warm-up call each (``warm``: cheaper warm-up calls instead, e.g. on a few inputs)."""
    for run in (warm or sides).values():
        run()
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(rounds):
        for name, run in sides.items():
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
    return times


def choose(accuracy: dict[str, dict[str, Any]], speed: dict[str, float]) -> tuple[str, dict[str, dict[str, Any]]]:
    """Apply the rule to per-backend results; returns the chosen backend and each backend's verdict.

    ``accuracy[backend]`` holds ``scores`` (set -> score) and ``agreement`` (share of sentences
    labelled as by torch fp32); ``speed[backend]`` is sentences per second.
    """
    reference = accuracy[TRAINING_BACKEND]["scores"]
    verdicts: dict[str, dict[str, Any]] = {}
    for backend, result in accuracy.items():
        changes = {s: result["scores"][s] - reference[s] for s in reference}
        reasons = [f"{s} {change:+.3f}" for s, change in changes.items() if abs(change) > MAX_SCORE_CHANGE]
        if result["agreement"] < MIN_AGREEMENT:
            reasons.append(f"labels agree on {result['agreement']:.1%} < {MIN_AGREEMENT:.1%}")
        verdicts[backend] = {"passes": backend == TRAINING_BACKEND or not reasons, "changes": changes,
                             "reasons": reasons}
    passing = [b for b in accuracy if verdicts[b]["passes"]]
    return max(passing, key=lambda b: speed[b]), verdicts


def compare_backends(model: StanceModel, backends: Sequence[str] = BACKENDS, rounds: int = 3,
                     speed_sentences: int = 200, threads: int = 2) -> dict[str, Any]:
    """Every backend of a loaded model on every held-out set and on speed, and the rule's choice.

    ``model``: a loaded model with a neural network (e.g. the shipped ``transformer``). Speed:
    ``speed_sentences`` lone seed sentences, ``rounds`` interleaved rounds on ``threads`` threads;
    each backend's embeddings are computed afresh (never read from the embedding cache). Returns
    ``{"backends": {b: {"scores", "agreement", "sentences_per_s", "round_seconds", ...}},
    "chosen": b, "rule": {...}, "load_average": [before, after]}``.
    """
    load_before = os.getloadavg()[0]
    variants: dict[str, StanceModel] = {}
    for backend in backends:
        variant = copy.copy(model.with_backend(backend))
        variant.threads = threads
        variants[backend] = variant
    accuracy: dict[str, dict[str, Any]] = {}
    predictions = {backend: held_out_predictions(variant) for backend, variant in variants.items()}
    reference = np.concatenate([predictions[TRAINING_BACKEND][s]["pred"] for s in SETS])
    for backend in backends:
        pooled = np.concatenate([predictions[backend][s]["pred"] for s in SETS])
        accuracy[backend] = {
            "scores": {s: float(predictions[backend][s]["score"]) for s in SETS},
            "agreement": float((pooled == reference).mean()),
            "agreement_by_set": {s: float((predictions[backend][s]["pred"] == predictions[TRAINING_BACKEND][s]["pred"])
                                          .mean()) for s in SETS},
        }
    texts = [r["text"] for r in seed_rows()][:speed_sentences]
    uncached = {backend: without_embedding_cache(variant) for backend, variant in variants.items()}
    times = interleaved_seconds({b: (lambda m=m: m.predict_proba(texts)) for b, m in uncached.items()}, rounds)
    speed = {b: len(texts) / statistics.median(t) for b, t in times.items()}
    chosen, verdicts = choose(accuracy, speed)
    return {
        "backends": {b: {**accuracy[b], **verdicts[b], "sentences_per_s": speed[b],
                         "round_seconds": [round(x, 3) for x in times[b]]} for b in backends},
        "chosen": chosen,
        "sets": {s: {"metric": predictions[TRAINING_BACKEND][s]["metric"], "n": predictions[TRAINING_BACKEND][s]["n"]}
                 for s in SETS},
        "rule": {"max_score_change": MAX_SCORE_CHANGE, "min_agreement": MIN_AGREEMENT},
        "speed": {"sentences": len(texts), "rounds": rounds, "threads": threads},
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
