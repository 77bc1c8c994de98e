"""The figures every evaluation reports: macro-F1, per-class P/R/F1, accuracy, F_avg, confusion
matrix, log-loss, Brier, ECE; contrast-set pair accuracy; article side accuracy and net-stance error;
bootstrap CIs over sentences, documents or groups; paired bootstrap comparisons."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from stance.aggregate import article_label, article_side, net_stance
from stance.labels import LABEL_TO_ID, LABELS, STANCE_LABELS


def label_ids(labels: Sequence[str]) -> np.ndarray:
    """Integer ids (positions in :data:`~stance.labels.LABELS`) of label names; ``KeyError`` for an unknown one."""
    return np.array([LABEL_TO_ID[label] for label in labels])


def expected_calibration_error(y: np.ndarray, proba: np.ndarray, bins: int = 5) -> float:
    """Confidence-binned ECE with ``bins`` equal-width bins (few bins: the data are small)."""
    confidence = proba.max(axis=1)
    correct = proba.argmax(axis=1) == y
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for low, high in zip(edges[:-1], edges[1:]):
        inside = (confidence > low) & (confidence <= high)
        if inside.any():
            ece += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(ece)


def macro_f1(y: np.ndarray, pred: np.ndarray) -> float:
    """Mean over the three labels of F1 = 2 TP / (2 TP + FP + FN), 0 for a label with no true and no
    predicted item: scikit-learn's ``f1_score(average="macro", labels=[0, 1, 2], zero_division=0)``
    (tested equal), computed with one ``bincount`` because the bootstraps call it ~10^4 times a setting."""
    k = len(LABELS)
    confusion = np.bincount(np.asarray(y, dtype=np.int64) * k + np.asarray(pred, dtype=np.int64),
                            minlength=k * k).reshape(k, k)
    tp = np.diag(confusion).astype(np.float64)
    denominator = confusion.sum(0) + confusion.sum(1)  # (TP + FP) + (TP + FN)
    f1 = np.divide(2 * tp, denominator, out=np.zeros(k), where=denominator > 0)
    return float(f1.mean())


def compute_metrics(y: np.ndarray, proba: np.ndarray) -> dict[str, Any]:
    """All point metrics for integer labels ``y`` and an ``(n, 3)`` probability matrix."""
    from sklearn.metrics import accuracy_score, confusion_matrix, log_loss, precision_recall_fscore_support

    pred = proba.argmax(axis=1)
    precision, recall, f1, support = precision_recall_fscore_support(
        y, pred, labels=range(len(LABELS)), zero_division=0
    )
    clipped = np.clip(proba, 1e-7, 1)
    clipped = clipped / clipped.sum(axis=1, keepdims=True)
    onehot = np.eye(len(LABELS))[y]
    per_class = {
        label: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                "support": int(support[i])}
        for i, label in enumerate(LABELS)
    }
    return {
        "macro_f1": macro_f1(y, pred),
        "f_avg": float(np.mean([per_class[label]["f1"] for label in STANCE_LABELS])),
        "accuracy": float(accuracy_score(y, pred)),
        "per_class": per_class,
        "confusion": confusion_matrix(y, pred, labels=range(len(LABELS))).tolist(),
        "log_loss": float(log_loss(y, clipped, labels=range(len(LABELS)))),
        "brier": float(np.mean(np.sum((proba - onehot) ** 2, axis=1))),
        "ece": expected_calibration_error(y, proba),
        "predicted_labels": sorted({LABELS[i] for i in pred}),
    }


def _resample(n_items: int, clusters: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    if clusters is None:
        return rng.integers(0, n_items, n_items)
    names = np.unique(clusters)
    drawn = rng.choice(names, size=len(names), replace=True)
    return np.concatenate([np.flatnonzero(clusters == c) for c in drawn])


def bootstrap_ci(
    y: np.ndarray,
    preds: Sequence[np.ndarray],
    clusters: np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    statistic: Callable[[np.ndarray, np.ndarray], float] = macro_f1,
) -> tuple[float, float]:
    """95% percentile CI of ``statistic`` (mean over ``preds``, one per repeat).

    Resamples sentences, or whole ``clusters`` (documents) when given.
    """
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        idx = _resample(len(y), clusters, rng)
        values.append(np.mean([statistic(y[idx], p[idx]) for p in preds]))
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def paired_comparison(
    y: np.ndarray,
    preds_a: Sequence[np.ndarray],
    preds_b: Sequence[np.ndarray],
    clusters: np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    statistic: Callable[[np.ndarray, np.ndarray], float] = macro_f1,
) -> dict[str, float]:
    """Paired bootstrap of statistic(a) - statistic(b) (macro-F1 by default) on the same items and folds.

    Returns the observed difference, its 95% CI, and ``p`` = share of resamples where the
    difference is <= 0 (one-sided evidence that ``a`` beats ``b``).
    """
    rng = np.random.default_rng(seed)

    def diff(idx: np.ndarray) -> float:
        a = np.mean([statistic(y[idx], p[idx]) for p in preds_a])
        b = np.mean([statistic(y[idx], p[idx]) for p in preds_b])
        return float(a - b)

    observed = diff(np.arange(len(y)))
    draws = np.array([diff(_resample(len(y), clusters, rng)) for _ in range(n_boot)])
    low, high = np.percentile(draws, [2.5, 97.5])
    return {"difference": observed, "ci_low": float(low), "ci_high": float(high),
            "p_not_better": float(np.mean(draws <= 0))}


def accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    """Share of items whose prediction equals the truth (0 for no items)."""
    return float(np.mean(y == pred)) if len(y) else 0.0


def pair_counts(y: np.ndarray, pred: np.ndarray, groups: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per contrast group (in sorted group order): its number of within-group sentence pairs and how
    many of them have both members right. A group of k sentences has k(k-1)/2 pairs."""
    groups_arr = np.asarray(groups)
    right = np.asarray(y) == np.asarray(pred)
    names = np.unique(groups_arr)
    pairs, both = np.zeros(len(names)), np.zeros(len(names))
    for g, name in enumerate(names):
        members = right[groups_arr == name]
        k, r = len(members), int(members.sum())
        pairs[g], both[g] = k * (k - 1) / 2, r * (r - 1) / 2
    return pairs, both


def pair_accuracy(y: np.ndarray, pred: np.ndarray, groups: Sequence[str]) -> float:
    """Contrast-set pair accuracy: the share of within-group sentence pairs whose two members are
    both labelled right (Gardner et al., 2020, report consistency over a contrast set; this is its
    pairwise form). In [0, 1]; 0 when there are no pairs."""
    pairs, both = pair_counts(y, pred, groups)
    return float(both.sum() / pairs.sum()) if pairs.sum() else 0.0


def pair_accuracy_ci(y: np.ndarray, pred: np.ndarray, groups: Sequence[str], n_boot: int = 1000, seed: int = 0,
                     baseline: np.ndarray | None = None) -> dict[str, float]:
    """95% percentile CI of pair accuracy by resampling whole contrast groups.

    With ``baseline`` predictions, the CI and one-sided ``p_not_better`` are of the paired
    difference (model - baseline) on the same resampled groups.
    """
    pairs, both = pair_counts(y, pred, groups)
    other = pair_counts(y, baseline, groups)[1] if baseline is not None else np.zeros_like(both)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(pairs), len(pairs))
        total = pairs[idx].sum()
        draws.append((both[idx].sum() - other[idx].sum()) / total if total else 0.0)
    low, high = np.percentile(draws, [2.5, 97.5])
    observed = float((both.sum() - other.sum()) / pairs.sum()) if pairs.sum() else 0.0
    if baseline is None:
        return {"value": observed, "ci_low": float(low), "ci_high": float(high)}
    return {"difference": observed, "ci_low": float(low), "ci_high": float(high),
            "p_not_better": float(np.mean(np.asarray(draws) <= 0))}


def article_sides(doc_ids: Sequence[str], labels: np.ndarray) -> dict[str, tuple[str, float]]:
    """Per article: the side by :func:`stance.aggregate.article_label` and the net stance, from
    its sentences' label ids."""
    out = {}
    docs = np.asarray(doc_ids)
    for doc in dict.fromkeys(doc_ids):
        counts = np.bincount(labels[docs == doc], minlength=len(LABELS))
        out[doc] = (article_side(article_label(counts)), net_stance(counts))
    return out


def article_metrics(proba: np.ndarray, rows: list[dict[str, Any]], articles: list[dict[str, str]], seed: int,
                    n_boot: int) -> tuple[dict[str, Any], list[np.ndarray], list[np.ndarray]]:
    """Article-level figures of sentence probabilities ``proba`` (``(len(rows), 3)``) over ``rows`` of
    the ``articles``: sentence macro-F1 (CI over articles), side accuracy against the writer's side
    (and from gold sentence labels), net-stance MAE, accuracy per register. Also returns the
    predicted sentence ids and article side ids, for paired comparisons."""
    y = label_ids([r["label"] for r in rows])
    docs = np.array([r["doc"] for r in rows])
    pred = proba.argmax(1)
    metrics = compute_metrics(y, proba)
    metrics["macro_f1_ci_articles"] = bootstrap_ci(y, [pred], docs, n_boot, seed)
    predicted, gold_rule = article_sides(docs, pred), article_sides(docs, y)
    order = [a["id"] for a in articles]
    side_ids = {side: k for k, side in enumerate(("pro-encryption", "pro-scanning", "neutral-or-balanced"))}
    written = np.array([side_ids[a["side"]] for a in articles])
    guessed = np.array([side_ids[predicted[doc][0]] for doc in order])
    from_gold = np.array([side_ids[gold_rule[doc][0]] for doc in order])
    metrics["side_accuracy"] = accuracy(written, guessed)
    metrics["side_accuracy_ci"] = list(bootstrap_ci(written, [guessed], None, n_boot, seed, accuracy))
    metrics["side_accuracy_gold_labels"] = accuracy(written, from_gold)
    metrics["net_stance_mae"] = float(np.mean([abs(predicted[d][1] - gold_rule[d][1]) for d in order]))
    metrics["articles"] = len(order)
    registers = {a["id"]: a["register"] for a in articles}
    by_register = np.array([registers[d] for d in docs])
    metrics["by_register"] = {
        reg: {"n": int((by_register == reg).sum()), "accuracy": accuracy(y[by_register == reg], pred[by_register == reg])}
        for reg in sorted(set(by_register))
    }
    return metrics, [pred], [guessed]
