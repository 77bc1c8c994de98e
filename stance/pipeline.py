"""The jobs behind ``make all`` / ``stance evaluate`` / ``stance train``: evaluate, select, ship.

Selection rule (declared in the README before the contrast-data runs, issue 15): among the
evaluated settings, choose the highest mean of four figures: seed leave-one-document-out macro-F1,
challenge-set macro-F1, contrast-test pair accuracy and article-test side accuracy; a model that
never predicts one of the three labels on the challenge set cannot be chosen. The best TF-IDF
setting ships as ``baseline``, the best encoder-based setting (ensembles included) as
``transformer``. The better of those two becomes the default unless it runs a neural encoder at
prediction time (:data:`DEFAULT_RULE`; added while the contrast-data grid ran, after its TF-IDF and
frozen-encoder settings had finished, following issue 15's "keep a fast default").
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from stance import paths
from stance.evaluation import ModelSpec
from stance.experiment import (
    BASELINE_SPECS,
    CONTEXT_BASELINE_SPECS,
    EMBEDDING_SPECS,
    ENSEMBLE_SPECS,
    MPNET_SPECS,
    REFERENCE_SPECS,
    SEED,
    TRANSFORMER_SPECS,
    evaluate_spec,
    paired_against,
    results_path,
    top_features_markdown,
    train_and_save,
)
from stance.labels import LABELS


def _settings(specs: list[ModelSpec], *training: str) -> list[tuple[ModelSpec, str]]:
    return [(spec, extra) for extra in training for spec in specs]


_MAIN = (_settings(REFERENCE_SPECS, "all") + _settings(BASELINE_SPECS[:1], "supplement")
         + _settings(CONTEXT_BASELINE_SPECS, "all"))
# (spec, training set) pairs; the training set names come from stance.data.EXTRA_SETS
GRIDS: dict[str, list[tuple[ModelSpec, str]]] = {
    # `make all`: the reference models, the default before the contrast data and the shipped baseline
    # recipe (TF-IDF with context on every training set); about five minutes on 2 cores
    "main": _MAIN,
    # `make experiments`: every variant: frozen MiniLM and mpnet (with and without context), their
    # ensembles with TF-IDF, and the fine-tuned transformers; its committed selection drives `make train`
    "full": _MAIN + _settings(BASELINE_SPECS[:1] + EMBEDDING_SPECS + MPNET_SPECS + ENSEMBLE_SPECS, "all")
    + _settings(TRANSFORMER_SPECS[2:], "all"),
}
REFERENCE_FAMILIES = {s.family for s in REFERENCE_SPECS}
BASELINE_FAMILIES = {"tfidf"}
ALL_SPECS = {s.name: s for s in REFERENCE_SPECS + BASELINE_SPECS + CONTEXT_BASELINE_SPECS + EMBEDDING_SPECS
             + MPNET_SPECS + ENSEMBLE_SPECS + TRANSFORMER_SPECS}
# the model `stance.predict` used before the contrast data (issue 15 compares against it)
PREVIOUS_DEFAULT = "tfidf-logreg+supplement"


def run_key(name: str, extra: str | bool) -> str:
    """Results key of a setting: the spec name, ``+<training set>`` unless seeds only."""
    if isinstance(extra, bool):
        extra = "supplement" if extra else "none"
    return name if extra == "none" else f"{name}+{extra}"


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
    from stance.tables import confusion_pngs, results_markdown

    confusion_pngs(results, out)
    table = results_markdown(payload)
    (out / "results.md").write_text(table)
    return table


# ModelSpec fields added after the first full grid was run
_LATER_SPEC_OPTIONS = ("single_inner_split", "final_only")


def _fingerprint(spec: ModelSpec, supplement: str, repeats: int, n_boot: int) -> str:
    """Identifies one setting's evaluation: spec, protocol sizes, seed and every labelled row."""
    from dataclasses import asdict, fields

    from stance.data import article_rows, challenge_rows, contrast_test_rows, data_hash, extra_training_rows, seed_rows
    from stance.experiment import _built

    rows = seed_rows() + extra_training_rows("all") + challenge_rows()
    if _built("contrast_test"):
        rows += contrast_test_rows()
    if _built("article_test"):
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


RULE = ("highest mean of seed-LODO macro-F1, challenge macro-F1, contrast-test pair accuracy and article-test "
        "side accuracy; models that never predict one of the three labels on the challenge set are excluded")
DEFAULT_RULE = ("the better of the two shipped models by the rule score becomes the default, unless it runs a neural "
                "encoder at prediction time (every non-TF-IDF model here: two to three orders of magnitude slower on 2 "
                "cores, see benchmarks/results/shipped_speed.md); then the fast baseline stays the default and the "
                "transformer is one `--model transformer` away")
RULE_PARTS = (("lodo", "macro_f1"), ("challenge", "macro_f1"), ("contrast_test", "pair_accuracy"),
              ("article_test", "side_accuracy"))


def rule_score(result: dict[str, Any]) -> float | None:
    """Mean of the rule's four figures, or ``None`` when the rule excludes the model (or a figure is missing)."""
    challenge = result.get("challenge", {})
    if "macro_f1" not in challenge or set(challenge["predicted_labels"]) != set(LABELS):
        return None
    figures = [result.get(part, {}).get(key) for part, key in RULE_PARTS]
    if any(f is None for f in figures):
        return None
    return float(np.mean(figures))


def select(results: dict[str, Any]) -> dict[str, Any]:
    """Apply the selection rule; return its inputs, the eligible scores and the winners."""
    candidates = {
        key: {"lodo_macro_f1": r.get("lodo", {}).get("macro_f1"), "challenge_macro_f1": r.get("challenge", {}).get("macro_f1"),
              "contrast_pair_accuracy": r.get("contrast_test", {}).get("pair_accuracy"),
              "article_side_accuracy": r.get("article_test", {}).get("side_accuracy"),
              "challenge_predicts_all_labels": set(r.get("challenge", {}).get("predicted_labels", [])) == set(LABELS),
              "score": rule_score(r), "family": r["family"], "model": r["model"], "supplement": r["supplement"],
              "training": r.get("training", "supplement" if r["supplement"] else "none")}
        for key, r in results.items() if r["family"] not in REFERENCE_FAMILIES
    }

    def best(families: set[str] | None, exclude: set[str]) -> str | None:
        eligible = [(c["score"], k) for k, c in candidates.items() if c["score"] is not None
                    and (families is None or c["family"] in families) and c["family"] not in exclude]
        return max(eligible)[1] if eligible else None

    baseline = best(BASELINE_FAMILIES, set())
    transformer = best(None, BASELINE_FAMILIES)
    scored = [(candidates[k]["score"], name) for k, name in ((baseline, "baseline"), (transformer, "transformer")) if k]
    better = max(scored)[1] if scored else "baseline"
    # issue 15: keep a fast default when the more accurate model is much slower; every model that runs a
    # neural encoder at prediction time is two to three orders of magnitude slower than TF-IDF on 2 cores
    default = "baseline" if better == "transformer" and baseline is not None else better
    return {
        "rule": RULE,
        "default_rule": DEFAULT_RULE,
        "candidates": candidates,
        "baseline": baseline,
        "transformer": transformer,
        "better_by_rule": better,
        "default": default,
    }


def _selection_file() -> Path:
    for grid in ("full", "main"):
        path = results_path(grid) / "selection.json"
        if path.exists():
            return path
    raise FileNotFoundError("no selection.json; run `stance evaluate` first")


def train_shipped(which: str = "all", selection_path: Path | None = None) -> dict[str, float]:
    """Train the models the selection rule chose and write ``models/DEFAULT``.

    Uses the full grid's selection when it exists (committed), else the main grid's.
    Returns training seconds per shipped model. Raises ``ValueError`` for an unknown ``which``.
    """
    if which not in {"all", "baseline", "transformer"}:
        raise ValueError(f"which must be all, baseline or transformer, got {which!r}")
    path = selection_path or _selection_file()
    selection = json.loads(path.read_text())
    metrics = json.loads((path.parent / "metrics.json").read_text())["results"]
    seconds: dict[str, float] = {}
    for name in ("baseline", "transformer"):
        key = selection.get(name)
        if which not in {"all", name} or key is None:
            continue
        chosen = metrics[key]
        spec: ModelSpec = ALL_SPECS[chosen["model"]]
        cv = {part: chosen[part] for part in ("lodo", "kfold", "challenge", "contrast_test", "article_test",
                                              "article_cv") if part in chosen}
        cv["selected_by"] = {"rule": selection["rule"], "results": str(path.relative_to(paths.project_root())),
                             "key": key}
        print(f"training {name} = {key} ...", flush=True)
        training = chosen.get("training", "supplement" if chosen["supplement"] else "none")
        model, seconds[name] = train_and_save(spec, paths.models_dir() / name, training, SEED, cv)
        if hasattr(model, "top_features"):
            results_path(f"top_ngrams_{name}.md").write_text(top_features_markdown(name, model.top_features()))
        print(f"  {name} trained in {seconds[name]:.1f} s", flush=True)
    (paths.models_dir() / "DEFAULT").write_text(selection["default"] + "\n")
    return seconds
