"""Ships the chosen models: tune and fit a spec on every training row, save it with its config and
card (:func:`train_and_save`), and train what the selection chose (:func:`train_shipped`).

The ``stance train`` command and ``experiments/train.py`` are thin wrappers over :func:`train_shipped`.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from stance import paths
from stance.data.loaders import data_hash, extra_training_rows, seed_rows
from stance.evaluation.cards import model_card, top_features_markdown
from stance.evaluation.protocol import columns, fit_tuned, probe_free
from stance.evaluation.runner import results_path
from stance.evaluation.specs import ALL_SPECS, SEED, ModelSpec, result_training_set, training_set_name
from stance.labels import LABELS
from stance.models import StanceModel


def train_and_save(
    spec: ModelSpec,
    out_dir: Path,
    extra: str | bool = "all",
    seed: int = SEED,
    cv_metrics: dict[str, Any] | None = None,
) -> tuple[StanceModel, float]:
    """Tune and fit ``spec`` on all seeds + the ``extra`` training set, save it with config and card.

    Returns the model and the training time in seconds (tuning included).
    """
    extra = training_set_name(extra)
    rows = seed_rows()
    extra_rows = extra_training_rows(extra)
    texts, labels, contexts = columns(rows)
    extra_texts, extra_labels, extra_contexts = columns(extra_rows)
    started = time.perf_counter()
    model, params = fit_tuned(
        spec, texts, labels, np.array([r["doc"] for r in rows]), np.array([r["group"] for r in rows]),
        extra_texts, extra_labels, seed, contexts, extra_contexts,
    )
    seconds = time.perf_counter() - started
    # what the model was fitted on: fit_tuned leaves out rows near a held-out probe
    used = [rows[i] for i in probe_free(texts)] + [extra_rows[i] for i in probe_free(extra_texts)]
    all_texts, all_labels = [r["text"] for r in used], [r["label"] for r in used]
    sources: dict[str, int] = {}
    for r in used:
        sources[r["source"]] = sources.get(r["source"], 0) + 1
    training_data = {
        "training_set": extra,
        "sentences_by_source": sources,
        "seed_sentences": sources.get("seed", 0),
        "supplement_sentences": sources.get("supplement", 0),
        "include_supplement": extra != "none",
        "left_out_near_probes": len(rows) + len(extra_rows) - len(used),
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
        training = result_training_set(chosen)
        model, seconds[name] = train_and_save(spec, paths.models_dir() / name, training, SEED, cv)
        if hasattr(model, "top_features"):
            results_path(f"top_ngrams_{name}.md").write_text(top_features_markdown(name, model.top_features()))
        print(f"  {name} trained in {seconds[name]:.1f} s", flush=True)
    (paths.models_dir() / "DEFAULT").write_text(selection["default"] + "\n")
    return seconds
