"""Runs the protocol: one setting (:func:`evaluate_spec`), and a grid of settings with its run cache
(:func:`run_evaluation`), written to ``experiments/results/<grid>/``.

The ``stance evaluate`` command and ``experiments/evaluate.py`` are thin wrappers over
:func:`run_evaluation`.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from stance import paths
from stance.data.articles import load_set
from stance.data.loaders import (
    article_rows,
    challenge_rows,
    contrast_test_rows,
    data_hash,
    extra_training_rows,
    seed_rows,
)
from stance.evaluation.heldout import article_test, behavioural_suite, built, challenge_test, contrast_test
from stance.evaluation.metrics import (
    accuracy,
    bootstrap_ci,
    compute_metrics,
    label_ids,
    pair_accuracy_ci,
    paired_comparison,
)
from stance.evaluation.protocol import (
    CVRun,
    article_cv,
    columns,
    cross_validate,
    fit_tuned,
    group_kfold_folds,
    lodo_folds,
)
from stance.evaluation.selection import select
from stance.evaluation.specs import (
    GRIDS,
    PREVIOUS_DEFAULT,
    REFERENCE_FAMILIES,
    SEED,
    ModelSpec,
    run_key,
    training_set_name,
)
from stance.evaluation.tables import confusion_pngs, results_markdown
from stance.labels import LABELS


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
    extra: str | bool = "supplement",
    repeats: int = 10,
    seed: int = SEED,
    n_boot: int = 1000,
    challenge: bool = True,
) -> tuple[dict[str, Any], dict[str, list[np.ndarray]]]:
    """Run one spec through the whole protocol.

    Seed LODO and repeated group k-fold (the ``extra`` own-words set joins every training fold and
    is never tested); then one model tuned and fitted on all seeds + ``extra`` is scored on the
    challenge set, the behavioural suite, the contrast test set and the article-level test set
    (each when built); with ``extra="all"`` the mini-articles are also held out by article
    (:func:`article_cv`). Returns the metrics and the predictions per evaluation (for paired tests).
    """
    extra = training_set_name(extra)
    rows = seed_rows()
    texts, labels, contexts = columns(rows)
    docs = np.array([r["doc"] for r in rows])
    groups = np.array([r["group"] for r in rows])
    extra_rows = extra_training_rows(extra)
    extra_texts, extra_labels, extra_contexts = columns(extra_rows)
    started = time.perf_counter()
    result: dict[str, Any] = {"model": spec.name, "family": spec.family, "params": spec.params, "grid": spec.grid,
                              "training": extra, "supplement": extra != "none", "seed": seed}
    oof: dict[str, list[np.ndarray]] = {}
    if not spec.final_only:
        _seed_folds(spec, result, oof, rows, extra_rows, repeats, seed, n_boot)
    if challenge:
        model, result["final_params"] = fit_tuned(spec, texts, labels, docs, groups, extra_texts, extra_labels,
                                                  seed, contexts, extra_contexts)
        result["challenge"], oof["challenge"] = challenge_test(model, seed, n_boot)
        result["behavioural"] = behavioural_suite(model)
        if built("contrast_test"):
            result["contrast_test"], oof["contrast_test"] = contrast_test(model, seed, n_boot)
        if built("article_test"):
            result["article_test"], oof["article_test"], oof["article_test_sides"] = article_test(model, seed, n_boot)
        if extra == "all" and built("articles") and not spec.final_only:
            result["article_cv"] = article_cv(spec, result["final_params"], rows, extra_rows, seed)
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result, oof


def _seed_folds(spec: ModelSpec, result: dict[str, Any], oof: dict[str, list[np.ndarray]],
                rows: list[dict[str, Any]], extra_rows: list[dict[str, Any]], repeats: int, seed: int,
                n_boot: int) -> None:
    """Seed LODO (every training seed of the spec) and repeated group k-fold, into ``result``/``oof``."""
    texts, labels, contexts = columns(rows)
    extra_texts, extra_labels, extra_contexts = columns(extra_rows)
    docs = np.array([r["doc"] for r in rows])
    groups = np.array([r["group"] for r in rows])
    y = label_ids(labels)
    # the folds stay fixed; only the model's training seed changes from run to run, and each
    # outer fold is tuned once (with the first seed) for all of them
    lodo_tuned: dict[str, Any] = {}
    lodo_runs = [
        cross_validate(spec, texts, labels, docs, groups, lodo_folds(docs, groups),
                       extra_texts, extra_labels, inner="lodo", seed=seed + run, tuned=lodo_tuned,
                       contexts=contexts, extra_contexts=extra_contexts)
        for run in range(spec.seeds_per_fold)
    ]
    kfold_runs = [
        cross_validate(spec, texts, labels, docs, groups,
                       group_kfold_folds(labels, groups, 5, repeat, seed), extra_texts, extra_labels,
                       inner="kfold", seed=seed, contexts=contexts, extra_contexts=extra_contexts)
        for repeat in range(min(repeats, spec.max_repeats or repeats))
    ]
    result["lodo"] = _summarise(y, lodo_runs, docs, seed, n_boot)
    result["kfold"] = _summarise(y, kfold_runs, docs, seed, n_boot)
    oof["lodo"] = [r.proba.argmax(1) for r in lodo_runs]
    oof["kfold"] = [r.proba.argmax(1) for r in kfold_runs]


def paired_against(
    baseline_oof: dict[str, list[np.ndarray]], oof: dict[str, list[np.ndarray]], seed: int = SEED
) -> dict[str, dict[str, float]]:
    """Paired bootstrap of a model against the baseline on every shared evaluation."""
    rows = seed_rows()
    y = label_ids([r["label"] for r in rows])
    docs = np.array([r["doc"] for r in rows])
    out = {}
    for key in ("lodo", "kfold"):
        if key not in oof or key not in baseline_oof:
            continue
        out[key] = paired_comparison(y, oof[key], baseline_oof[key], None, 1000, seed)
        out[f"{key}_documents"] = paired_comparison(y, oof[key], baseline_oof[key], docs, 1000, seed)
    if oof.get("challenge") and baseline_oof.get("challenge"):
        y_challenge = label_ids([r["label"] for r in challenge_rows()])
        out["challenge"] = paired_comparison(y_challenge, oof["challenge"], baseline_oof["challenge"], None,
                                             1000, seed)
    if oof.get("contrast_test") and baseline_oof.get("contrast_test"):
        contrast = contrast_test_rows()
        y_contrast = label_ids([r["label"] for r in contrast])
        groups = np.array([r["group"] for r in contrast])
        out["contrast_pairs"] = pair_accuracy_ci(y_contrast, oof["contrast_test"][0], groups, 1000, seed,
                                                 baseline=baseline_oof["contrast_test"][0])
        out["contrast_macro_f1"] = paired_comparison(y_contrast, oof["contrast_test"], baseline_oof["contrast_test"],
                                                     groups, 1000, seed)
    if oof.get("article_test_sides") and baseline_oof.get("article_test_sides"):
        articles = load_set("article_test")[1]
        side_ids = {side: k for k, side in enumerate(("pro-encryption", "pro-scanning", "neutral-or-balanced"))}
        written = np.array([side_ids[a["side"]] for a in articles])
        out["article_sides"] = paired_comparison(written, oof["article_test_sides"], baseline_oof["article_test_sides"],
                                                 None, 1000, seed, accuracy)
    return out


def results_path(name: str) -> Path:
    folder = paths.results_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def run_evaluation(grid: str = "main", repeats: int = 10, n_boot: int = 1000) -> str:
    """Evaluate every (spec, training set) setting of ``grid``; write the results.

    Writes ``experiments/results/<grid>/metrics.json``, ``results.md`` and confusion PNGs,
    and ``selection.json`` with the rule's inputs and winners. Returns the Markdown table.
    """
    if grid not in GRIDS:
        raise ValueError(f"unknown grid {grid!r}; choose from {sorted(GRIDS)}")
    out = results_path(grid)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    oofs: dict[str, Any] = {}
    for spec, extra in GRIDS[grid]:
        key = run_key(spec.name, extra)
        results[key], oofs[key] = _evaluate_or_resume(spec, extra, repeats, n_boot, out / "runs")
    for key, result in results.items():
        baseline = run_key("tfidf-logreg", result.get("training", result["supplement"]))
        if result["family"] not in REFERENCE_FAMILIES and key != baseline and baseline in oofs and "lodo" in result:
            result["paired_vs_baseline"] = paired_against(oofs[baseline], oofs[key], SEED)
        if result["family"] not in REFERENCE_FAMILIES and key != PREVIOUS_DEFAULT and PREVIOUS_DEFAULT in oofs:
            result["paired_vs_previous_default"] = paired_against(oofs[PREVIOUS_DEFAULT], oofs[key], SEED)
    selection = select(results)
    payload = {"grid": grid, "seed": SEED, "repeats": repeats, "bootstrap": n_boot, "labels": list(LABELS),
               "results": results, "selection": selection}
    frozen = paths.data_dir() / "contrast_test" / "FROZEN"
    if frozen.exists():
        payload["contrast_test_sha256"] = frozen.read_text().split()[0]
    (out / "metrics.json").write_text(json.dumps(payload, indent=1, default=float) + "\n")
    (out / "selection.json").write_text(json.dumps(selection, indent=2) + "\n")
    confusion_pngs(results, out)
    table = results_markdown(payload)
    (out / "results.md").write_text(table)
    return table


# ModelSpec fields added after the first full grid was run
_LATER_SPEC_OPTIONS = ("single_inner_split", "final_only")


def _fingerprint(spec: ModelSpec, supplement: str, repeats: int, n_boot: int) -> str:
    """Identifies one setting's evaluation: spec, protocol sizes, seed and every labelled row."""
    from dataclasses import asdict, fields

    rows = seed_rows() + extra_training_rows("all") + challenge_rows()
    if built("contrast_test"):
        rows += contrast_test_rows()
    if built("article_test"):
        rows += article_rows("article_test")
    described = asdict(spec)
    # an option added after a grid was run leaves earlier fingerprints unchanged at its default
    defaults = {f.name: f.default for f in fields(spec)}
    for option in _LATER_SPEC_OPTIONS:
        if option in described and described[option] == defaults[option]:
            del described[option]
    setting = json.dumps({"spec": described, "supplement": supplement, "repeats": repeats, "bootstrap": n_boot,
                          "seed": SEED, "data": data_hash([r["text"] for r in rows], [r["label"] for r in rows])},
                         sort_keys=True)
    return hashlib.sha256(setting.encode()).hexdigest()


def _evaluate_or_resume(spec: ModelSpec, supplement: str, repeats: int, n_boot: int,
                        runs_dir: Path) -> tuple[dict[str, Any], dict[str, list[np.ndarray]]]:
    """Evaluate one setting, or reuse its saved run when nothing it depends on has changed.

    A long grid killed half-way (a session limit, a crash) then restarts where it stopped.
    """
    key = run_key(spec.name, supplement)
    fingerprint = _fingerprint(spec, supplement, repeats, n_boot)
    saved = runs_dir / f"{key}.json"
    if saved.exists():
        run = json.loads(saved.read_text())
        if run.get("fingerprint") == fingerprint:
            print(f"reusing {key} from {saved}", flush=True)
            return run["result"], {part: [np.asarray(p) for p in preds] for part, preds in run["oof"].items()}
    print(f"evaluating {key} ...", flush=True)
    result, oof = evaluate_spec(spec, supplement, repeats=repeats, seed=SEED, n_boot=n_boot)
    print(f"  done in {result['seconds']} s", flush=True)
    runs_dir.mkdir(parents=True, exist_ok=True)
    run = {"fingerprint": fingerprint, "result": result,
           "oof": {part: [p.tolist() for p in preds] for part, preds in oof.items()}}
    saved.write_text(json.dumps(run, default=float) + "\n")
    return result, oof
