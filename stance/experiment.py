"""Evaluate model specs by the protocol and train/save the shipped models.

The experiment scripts and the ``stance train`` / ``stance evaluate`` commands are thin
wrappers over :func:`evaluate_specs` and :func:`train_and_save`.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from stance import paths
from stance.data import challenge_rows, data_hash, seed_rows, supplement_rows
from stance.evaluation import (
    CVRun,
    ModelSpec,
    bootstrap_ci,
    compute_metrics,
    cross_validate,
    group_kfold_folds,
    lodo_folds,
    paired_comparison,
    tune,
)
from stance.labels import LABEL_TO_ID, LABELS
from stance.models import StanceModel

SEED = 13  # the project's one seed source; every script passes it down

REFERENCE_SPECS = [
    ModelSpec("majority", "majority"),
    ModelSpec("stratified-random", "stratified-random"),
    ModelSpec("keyword-rule", "keyword-rule"),
]
BASELINE_SPECS = [
    ModelSpec("tfidf-logreg", "tfidf", {"classifier": "logreg"}, {"C": [1.0, 10.0]}),
    ModelSpec("tfidf-svm", "tfidf", {"classifier": "svm"}, {"C": [0.1, 1.0, 10.0]}),
]
EMBEDDING_SPECS = [
    ModelSpec("minilm-frozen-logreg", "embedding-logreg", {}, {"C": [0.1, 1.0, 10.0]}),
]
TRANSFORMER_SPECS = [
    # One fine-tuning on seeds + supplement takes ~100 s (3 epochs) and one SetFit ~60 s (800 pairs)
    # on an idle 2-core machine, so a full nested grid would take hours. The fine-tuning's learning
    # rate is chosen per outer fold on one stratified group hold-out of its training rows (2 extra
    # fits per fold), with a fixed budget of 3 epochs; SetFit's budget is fixed. Several training
    # seeds per LODO fold for the fine-tuning, one k-fold repeat each.
    ModelSpec("minilm-finetune", "transformer", {"epochs": 3}, {"learning_rate": [3e-5, 1e-4]},
              seeds_per_fold=3, max_repeats=1, single_inner_split=True),
    ModelSpec("minilm-setfit", "setfit", {"max_pairs": 800}, max_repeats=1),
]


def _ids(labels: Sequence[str]) -> np.ndarray:
    return np.array([LABEL_TO_ID[label] for label in labels])


def _summarise(y: np.ndarray, runs: list[CVRun], docs: np.ndarray, seed: int, n_boot: int) -> dict[str, Any]:
    preds = [run.proba.argmax(1) for run in runs]
    per_run = [compute_metrics(y, run.proba) for run in runs]
    pooled = compute_metrics(np.tile(y, len(runs)), np.vstack([run.proba for run in runs]))
    result = {
        **pooled,
        "macro_f1": float(np.mean([m["macro_f1"] for m in per_run])),
        "macro_f1_sd_over_repeats": float(np.std([m["macro_f1"] for m in per_run])),
        "macro_f1_ci_sentences": bootstrap_ci(y, preds, None, n_boot, seed),
        "macro_f1_ci_documents": bootstrap_ci(y, preds, docs, n_boot, seed),
        "repeats": len(runs),
        "chosen_params": [run.chosen_params for run in runs],
    }
    return result


def evaluate_spec(
    spec: ModelSpec,
    include_supplement: bool,
    repeats: int = 10,
    seed: int = SEED,
    n_boot: int = 1000,
    challenge: bool = True,
) -> tuple[dict[str, Any], dict[str, list[np.ndarray]]]:
    """Run one spec through LODO, repeated group k-fold and (optionally) the challenge set.

    Returns the metrics and the out-of-fold predictions per evaluation (for paired tests).
    The supplement, when included, joins every training fold and is never tested.
    """
    rows = seed_rows()
    texts = [r["text"] for r in rows]
    labels = [r["label"] for r in rows]
    docs = np.array([r["doc"] for r in rows])
    groups = np.array([r["group"] for r in rows])
    extra = supplement_rows() if include_supplement else []
    extra_texts, extra_labels = [r["text"] for r in extra], [r["label"] for r in extra]
    y = _ids(labels)
    started = time.perf_counter()
    # the folds stay fixed; only the model's training seed changes from run to run, and each
    # outer fold is tuned once (with the first seed) for all of them
    lodo_tuned: dict[str, Any] = {}
    lodo_runs = [
        cross_validate(spec, texts, labels, docs, groups, lodo_folds(docs, groups),
                       extra_texts, extra_labels, inner="lodo", seed=seed + run, tuned=lodo_tuned)
        for run in range(spec.seeds_per_fold)
    ]
    kfold_runs = [
        cross_validate(spec, texts, labels, docs, groups,
                       group_kfold_folds(labels, groups, 5, repeat, seed), extra_texts, extra_labels,
                       inner="kfold", seed=seed)
        for repeat in range(min(repeats, spec.max_repeats or repeats))
    ]
    result: dict[str, Any] = {
        "model": spec.name,
        "family": spec.family,
        "params": spec.params,
        "grid": spec.grid,
        "supplement": include_supplement,
        "seed": seed,
        "lodo": _summarise(y, lodo_runs, docs, seed, n_boot),
        "kfold": _summarise(y, kfold_runs, docs, seed, n_boot),
    }
    oof = {"lodo": [r.proba.argmax(1) for r in lodo_runs], "kfold": [r.proba.argmax(1) for r in kfold_runs]}
    if challenge:
        model, result["final_params"] = fit_tuned(spec, texts, labels, docs, groups, extra_texts, extra_labels,
                                                  seed)
        result["challenge"], oof["challenge"] = _challenge(model, seed, n_boot)
        result["behavioural"] = _behavioural(model)
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result, oof


def _behavioural(model: StanceModel) -> dict[str, Any]:
    from stance.behavioural import run_suite

    return run_suite(model)


def _challenge(model: StanceModel, seed: int, n_boot: int) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Metrics of a model trained on all seeds (+ supplement) on the independent challenge set."""
    rows = challenge_rows()
    y = _ids([r["label"] for r in rows])
    proba = model.predict_proba([r["text"] for r in rows])
    metrics = compute_metrics(y, proba)
    metrics["macro_f1_ci_sentences"] = bootstrap_ci(y, [proba.argmax(1)], None, n_boot, seed)
    return metrics, [proba.argmax(1)]


def fit_tuned(
    spec: ModelSpec,
    texts: list[str],
    labels: list[str],
    docs: np.ndarray,
    groups: np.ndarray,
    extra_texts: list[str],
    extra_labels: list[str],
    seed: int,
) -> tuple[StanceModel, dict[str, Any]]:
    """Tune ``spec`` by grouped CV over all given rows, then fit on all of them (+ extras)."""
    everything = np.arange(len(texts))
    params, _ = tune(spec, texts, labels, docs, groups, everything, (extra_texts, extra_labels), "lodo", seed)
    model = spec.build(seed, **params)
    model.fit(texts + extra_texts, labels + extra_labels)
    return model, params


def paired_against(
    baseline_oof: dict[str, list[np.ndarray]], oof: dict[str, list[np.ndarray]], seed: int = SEED
) -> dict[str, dict[str, float]]:
    """Paired bootstrap of a model against the baseline on every shared evaluation."""
    rows = seed_rows()
    y = _ids([r["label"] for r in rows])
    docs = np.array([r["doc"] for r in rows])
    out = {}
    for key in ("lodo", "kfold"):
        out[key] = paired_comparison(y, oof[key], baseline_oof[key], None, 1000, seed)
        out[f"{key}_documents"] = paired_comparison(y, oof[key], baseline_oof[key], docs, 1000, seed)
    if oof.get("challenge") and baseline_oof.get("challenge"):
        y_challenge = _ids([r["label"] for r in challenge_rows()])
        out["challenge"] = paired_comparison(y_challenge, oof["challenge"], baseline_oof["challenge"], None,
                                             1000, seed)
    return out


def train_and_save(
    spec: ModelSpec,
    out_dir: Path,
    include_supplement: bool,
    seed: int = SEED,
    cv_metrics: dict[str, Any] | None = None,
) -> tuple[StanceModel, float]:
    """Tune and fit ``spec`` on all seeds (+ supplement), save it with config and model card.

    Returns the model and the training time in seconds (tuning included).
    """
    rows = seed_rows()
    extra = supplement_rows() if include_supplement else []
    texts, labels = [r["text"] for r in rows], [r["label"] for r in rows]
    started = time.perf_counter()
    model, params = fit_tuned(
        spec, texts, labels, np.array([r["doc"] for r in rows]), np.array([r["group"] for r in rows]),
        [r["text"] for r in extra], [r["label"] for r in extra], seed,
    )
    seconds = time.perf_counter() - started
    all_texts, all_labels = texts + [r["text"] for r in extra], labels + [r["label"] for r in extra]
    training_data = {
        "seed_sentences": len(rows),
        "supplement_sentences": len(extra),
        "include_supplement": include_supplement,
        "data_sha256": data_hash(all_texts, all_labels),
        "label_counts": {label: all_labels.count(label) for label in LABELS},
    }
    # saved beside the target and swapped in whole: no files of an earlier model of another
    # family are left behind, and a failed save leaves the earlier model as it was
    staging = out_dir.parent / f".{out_dir.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    model.save(staging, name=out_dir.name, spec=spec.name, resolved_params={**spec.params, **params},
               training_data=training_data, cv_metrics=cv_metrics or {}, train_seconds=round(seconds, 1))
    card = model_card(out_dir.name, spec, params, training_data, cv_metrics or {})
    if hasattr(model, "top_features"):  # linear models over n-grams can show what they learned
        card += "\n" + top_features_markdown(out_dir.name, model.top_features())
    (staging / "README.md").write_text(card)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    staging.rename(out_dir)
    return model, seconds


def top_features_markdown(name: str, features: dict[str, list[tuple[str, float]]]) -> str:
    """A table of the highest-weighted n-grams per label (``word:``/``char:`` prefixes kept)."""
    lines = [f"## Top weighted n-grams per label: `{name}`", "",
             "Generated by `stance train` from the saved model's coefficients.", "",
             "| rank | " + " | ".join(features) + " |", "|---|" + "---|" * len(features)]
    depth = max(len(v) for v in features.values())
    for rank in range(depth):
        cells = [f"`{v[rank][0]}` {v[rank][1]:+.2f}" if rank < len(v) else "" for v in features.values()]
        lines.append(f"| {rank + 1} | " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _fmt_ci(ci: Sequence[float]) -> str:
    return f"[{ci[0]:.2f}, {ci[1]:.2f}]"


def model_card(name: str, spec: ModelSpec, params: dict[str, Any], training: dict[str, Any],
               metrics: dict[str, Any]) -> str:
    """A Markdown model card: data, intended use, limits, per-class scores."""
    lines = [
        f"# Model card: `{name}`",
        "",
        f"- Family: `{spec.family}` (spec `{spec.name}`), resolved params: `{json.dumps({**spec.params, **params})}`",
        f"- Trained on: {training['seed_sentences']} seed sentences"
        + (f" + {training['supplement_sentences']} own-words supplement sentences" if training["include_supplement"]
           else " only (no supplement)"),
        f"- Label counts in training: {training['label_counts']}",
        f"- Training data sha256: `{training['data_sha256']}`",
        "",
        "## Intended use",
        "Sentence-level stance in the debate over end-to-end encryption of messaging versus detection of",
        "child sexual abuse on platforms (`pro-scanning`, `pro-encryption`, `neutral`), for measuring how news",
        "and parliament frame the debate in aggregate. Not for judging individuals or moderating content.",
        "",
        "## Limits",
        "- The seeds are five UK-centred articles (2019-2024) with few `pro-encryption` sentences; per-class",
        "  figures for that class rest on very few examples.",
        "- The supplement is synthetic (written by the project's maintainers); the challenge set is",
        "  independent of it but also written for the project, not sampled from published text.",
        "- English only; other languages get a prediction but it is not meaningful.",
        "",
    ]
    for key, title in (("lodo", "Leave-one-document-out (seeds)"), ("kfold", "Repeated group 5-fold (seeds)"),
                       ("challenge", "Challenge set")):
        part = metrics.get(key)
        if not part or "macro_f1" not in part:
            continue
        lines += [f"## {title}", f"macro-F1 {part['macro_f1']:.3f}"
                  + (f" (95% CI {_fmt_ci(part['macro_f1_ci_sentences'])})" if "macro_f1_ci_sentences" in part else ""),
                  "", "| label | precision | recall | F1 | support |", "|---|---|---|---|---|"]
        for label in LABELS:
            c = part["per_class"][label]
            lines.append(f"| {label} | {c['precision']:.2f} | {c['recall']:.2f} | {c['f1']:.2f} | {c['support']} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def results_path(name: str) -> Path:
    folder = paths.results_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name
