"""One fitted model scored on each held-out set: the challenge set, the contrast test set, the
article-level test and the behavioural suite."""

from __future__ import annotations

from typing import Any

import numpy as np

from stance import paths
from stance.data.articles import load_set
from stance.data.loaders import challenge_rows, contrast_test_rows
from stance.evaluation.behavioural import run_suite
from stance.evaluation.metrics import (
    accuracy,
    article_metrics,
    bootstrap_ci,
    compute_metrics,
    label_ids,
    pair_accuracy,
    pair_accuracy_ci,
)
from stance.evaluation.specs import SEED
from stance.models import StanceModel


def built(name: str) -> bool:
    """Whether the data set ``name`` (``contrast_test``, ``articles``, ``article_test``, ...) has been built."""
    folder = paths.data_dir() / name
    return (folder / ("articles.csv" if name in {"articles", "article_test"} else f"{name}.csv")).exists()


def challenge_test(model: StanceModel, seed: int, n_boot: int) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Metrics of a model trained on all seeds (+ supplement) on the independent challenge set."""
    rows = challenge_rows()
    y = label_ids([r["label"] for r in rows])
    proba = model.predict_proba([r["text"] for r in rows])
    metrics = compute_metrics(y, proba)
    metrics["macro_f1_ci_sentences"] = bootstrap_ci(y, [proba.argmax(1)], None, n_boot, seed)
    return metrics, [proba.argmax(1)]


def contrast_test(model: StanceModel, seed: int = SEED, n_boot: int = 1000) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Macro-F1 and pair accuracy (with 95% CIs over contrast groups) of ``model`` on the contrast
    test set, per construction and per register."""
    rows = contrast_test_rows()
    y = label_ids([r["label"] for r in rows])
    groups = np.array([r["group"] for r in rows])
    proba = model.predict_proba([r["text"] for r in rows])
    pred = proba.argmax(1)
    metrics = compute_metrics(y, proba)
    metrics["macro_f1_ci_groups"] = bootstrap_ci(y, [pred], groups, n_boot, seed)
    metrics["pair_accuracy"] = pair_accuracy(y, pred, groups)
    ci = pair_accuracy_ci(y, pred, groups, n_boot, seed)
    metrics["pair_accuracy_ci"] = [ci["ci_low"], ci["ci_high"]]
    metrics["pairs"] = int(sum(len(m) * (len(m) - 1) // 2 for m in _members(groups).values()))
    for field in ("construction", "register"):
        values = np.array([r.get(field, "") for r in rows])
        metrics[f"by_{field}"] = {
            value: {"n": int((values == value).sum()),
                    "pair_accuracy": pair_accuracy(y[values == value], pred[values == value], groups[values == value]),
                    "accuracy": accuracy(y[values == value], pred[values == value])}
            for value in sorted(set(values))
        }
    return metrics, [pred]


def _members(groups: np.ndarray) -> dict[str, np.ndarray]:
    return {g: np.flatnonzero(groups == g) for g in np.unique(groups)}


def article_test(model: StanceModel, seed: int = SEED, n_boot: int = 1000
                 ) -> tuple[dict[str, Any], list[np.ndarray], list[np.ndarray]]:
    """The article-level test: sentence macro-F1 in context, the article side (pro-encryption /
    pro-scanning / neutral-or-balanced) against the writer's, and the mean absolute error of the
    net stance from predicted against from gold sentence labels. CIs resample whole articles."""
    rows, articles = load_set("article_test")
    return article_metrics(model.predict_proba([r["text"] for r in rows], [r["context"] for r in rows]),
                           rows, articles, seed, n_boot)


def behavioural_suite(model: StanceModel) -> dict[str, Any]:
    """Pass rates of ``model`` on the behavioural suite (:func:`stance.evaluation.behavioural.run_suite`)."""
    return run_suite(model)
