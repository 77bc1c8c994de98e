"""The one evaluation protocol every model is judged by.

* Folds: leave-one-document-out (primary) and repeated stratified group k-fold (secondary).
  No near-duplicate group ever has members on both sides of a fold: a leave-one-document-out
  fold drops from training every sentence whose group also occurs in the held-out document.
* Nested tuning: hyper-parameters are chosen on inner folds built from the outer training
  part only; the outer test fold is never seen by fitting or tuning.
* Extra training rows (the supplement) are added to every training fold, never to a test fold.
* Metrics: macro-F1, per-class P/R/F1, accuracy, F_avg, confusion matrix, log-loss, Brier,
  ECE; bootstrap CIs over sentences and over whole documents; paired bootstrap comparisons.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stance.labels import LABEL_TO_ID, LABELS, STANCE_LABELS
from stance.models import StanceModel, model_class

# torch threads of every model an experiment builds (2 cores here)
EXPERIMENT_THREADS = 2


@dataclass(frozen=True)
class Fold:
    """Indices into the evaluated rows: who trains and who is tested."""

    name: str
    train: np.ndarray
    test: np.ndarray


@dataclass(frozen=True)
class ModelSpec:
    """A named model family with fixed params and an optional grid tuned by nested CV.

    ``seeds_per_fold``: how many training seeds every leave-one-document-out fold is run with
    (mean and spread are reported); ``max_repeats`` caps the k-fold repeats of a costly model.
    ``single_inner_split``: tune on one stratified group hold-out of the outer training rows
    (a third of them) instead of on every inner fold, for models whose one fit costs minutes.
    ``final_only``: skip the seed folds and score only the model fitted on all training rows on the
    held-out sets (for settings whose one fit takes many minutes); the selection rule, which needs
    seed LODO, cannot choose such a setting.
    """

    name: str
    family: str
    params: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    seeds_per_fold: int = 1
    max_repeats: int | None = None
    single_inner_split: bool = False
    final_only: bool = False

    def build(self, seed: int, **overrides: Any) -> StanceModel:
        model = model_class(self.family)(**{**self.params, **overrides, "seed": seed})
        # a fixed torch thread count fixes the order of float reductions: the results repeat
        model.threads = EXPERIMENT_THREADS
        return model

    def candidates(self) -> list[dict[str, Any]]:
        keys = sorted(self.grid)
        return [dict(zip(keys, values)) for values in itertools.product(*(self.grid[k] for k in keys))]


class FoldLeakError(AssertionError):
    """A fold puts one document or near-duplicate group on both sides."""


def lodo_folds(docs: Sequence[str], groups: Sequence[str]) -> list[Fold]:
    """One fold per document; training drops sentences sharing a group with the test document."""
    docs_arr, groups_arr = np.asarray(docs), np.asarray(groups)
    folds = []
    for doc in sorted(set(docs)):
        test = np.flatnonzero(docs_arr == doc)
        held_groups = set(groups_arr[test])
        train = np.flatnonzero((docs_arr != doc) & ~np.isin(groups_arr, list(held_groups)))
        folds.append(Fold(f"lodo:{doc}", train, test))
    return folds


def group_kfold_folds(
    labels: Sequence[str], groups: Sequence[str], n_splits: int = 5, repeat: int = 0, seed: int = 0
) -> list[Fold]:
    """Stratified k-fold over near-duplicate groups (sentences of one group stay together)."""
    from sklearn.model_selection import StratifiedGroupKFold

    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed + repeat)
    y = np.array([LABEL_TO_ID[label] for label in labels])
    return [
        Fold(f"kfold:r{repeat}f{k}", train, test)
        for k, (train, test) in enumerate(splitter.split(np.zeros(len(y)), y, np.asarray(groups)))
    ]


def check_folds(folds: Sequence[Fold], groups: Sequence[str], docs: Sequence[str] | None = None) -> None:
    """Raise :class:`FoldLeakError` if any fold splits a group (or, with ``docs``, a document)."""
    groups_arr = np.asarray(groups)
    for fold in folds:
        if np.intersect1d(fold.train, fold.test).size:
            raise FoldLeakError(f"{fold.name}: a sentence is in both train and test")
        shared = set(groups_arr[fold.train]) & set(groups_arr[fold.test])
        if shared:
            raise FoldLeakError(f"{fold.name}: group {sorted(shared)[0]} on both sides")
        if docs is not None:
            docs_arr = np.asarray(docs)
            split_docs = set(docs_arr[fold.train]) & set(docs_arr[fold.test])
            if split_docs:
                raise FoldLeakError(f"{fold.name}: document {sorted(split_docs)[0]} on both sides")


# ---------------------------------------------------------------- metrics


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


# ---------------------------------------------------------------- cross-validation


@dataclass
class CVRun:
    """Out-of-fold probabilities of one pass over a set of folds."""

    proba: np.ndarray
    fold_names: list[str]
    chosen_params: dict[str, dict[str, Any]]
    tuning_rows: dict[str, list[int]]  # outer fold -> row indices the tuning saw


def _fit_predict(
    spec: ModelSpec,
    params: dict[str, Any],
    texts: list[str],
    labels: list[str],
    contexts: list[str],
    train: np.ndarray,
    test: np.ndarray,
    extra: tuple[list[str], list[str], list[str]],
    seed: int,
) -> np.ndarray:
    model = spec.build(seed, **params)
    model.fit([texts[i] for i in train] + extra[0], [labels[i] for i in train] + extra[1],
              [contexts[i] for i in train] + extra[2])
    return model.predict_proba([texts[i] for i in test], [contexts[i] for i in test])


def _inner_folds(
    train: np.ndarray,
    docs: np.ndarray,
    groups: np.ndarray,
    labels: list[str],
    inner: str,
    seed: int,
    single_split: bool = False,
) -> list[Fold]:
    """Inner folds over the outer training rows, as indices into the full row set.

    ``single_split`` returns only the first fold of a stratified group 3-fold: one held-out
    document would often hold one or no ``pro-encryption`` sentence, too few to rank settings.
    """
    if inner == "lodo" and len(set(docs[train])) >= 2 and not single_split:
        local = lodo_folds(docs[train], groups[train])
    else:
        local = group_kfold_folds([labels[i] for i in train], groups[train], n_splits=3, seed=seed)
        local = local[:1] if single_split else local
    return [Fold(f.name, train[f.train], train[f.test]) for f in local]


def tune(
    spec: ModelSpec,
    texts: list[str],
    labels: list[str],
    docs: np.ndarray,
    groups: np.ndarray,
    train: np.ndarray,
    extra: tuple[list[str], list[str], list[str]],
    inner: str,
    seed: int,
    contexts: list[str] | None = None,
) -> tuple[dict[str, Any], list[int]]:
    """Pick the grid point with the best inner-fold macro-F1, using only rows in ``train``.

    ``extra``: texts, labels and contexts that join every inner training set. Returns the chosen
    params and every row index the tuning looked at.
    """
    contexts = list(contexts) if contexts is not None else [""] * len(texts)
    candidates = spec.candidates()
    if len(candidates) <= 1:
        return (candidates[0] if candidates else {}), []
    folds = _inner_folds(train, docs, groups, labels, inner, seed, spec.single_inner_split)
    y = np.array([LABEL_TO_ID[label] for label in labels])
    seen = sorted({int(i) for f in folds for i in (*f.train, *f.test)})
    best, best_score = candidates[0], -1.0
    for params in candidates:
        scores = [
            macro_f1(y[f.test],
                     _fit_predict(spec, params, texts, labels, contexts, f.train, f.test, extra, seed).argmax(1))
            for f in folds
        ]
        if np.mean(scores) > best_score:
            best, best_score = params, float(np.mean(scores))
    return best, seen


def cross_validate(
    spec: ModelSpec,
    texts: Sequence[str],
    labels: Sequence[str],
    docs: Sequence[str],
    groups: Sequence[str],
    folds: Sequence[Fold],
    extra_texts: Sequence[str] = (),
    extra_labels: Sequence[str] = (),
    inner: str = "lodo",
    seed: int = 0,
    tuned: dict[str, tuple[dict[str, Any], list[int]]] | None = None,
    contexts: Sequence[str] | None = None,
    extra_contexts: Sequence[str] | None = None,
) -> CVRun:
    """Nested CV: per outer fold, tune on its training rows, fit, predict its test rows.

    ``extra_*`` rows join every training set (outer and inner) and are never tested.
    ``contexts``/``extra_contexts``: one context string per row (empty when ``None``).
    ``tuned`` (outer fold name -> chosen params and tuning rows) is read and filled, so runs
    that differ only in the training seed tune each outer fold once.
    Raises :class:`FoldLeakError` if a fold splits a near-duplicate group.
    """
    texts, labels = list(texts), list(labels)
    docs_arr, groups_arr = np.asarray(docs), np.asarray(groups)
    check_folds(folds, groups_arr)
    contexts = list(contexts) if contexts is not None else [""] * len(texts)
    extra = (list(extra_texts), list(extra_labels),
             list(extra_contexts) if extra_contexts is not None else [""] * len(extra_texts))
    proba = np.full((len(texts), len(LABELS)), np.nan)
    chosen: dict[str, dict[str, Any]] = {}
    seen: dict[str, list[int]] = {}
    tuned = {} if tuned is None else tuned
    for fold in folds:
        if fold.name not in tuned:
            tuned[fold.name] = tune(spec, texts, labels, docs_arr, groups_arr, fold.train, extra, inner, seed,
                                    contexts)
        params, seen[fold.name] = tuned[fold.name]
        chosen[fold.name] = params
        proba[fold.test] = _fit_predict(spec, params, texts, labels, contexts, fold.train, fold.test, extra, seed)
    if np.isnan(proba).any():
        raise ValueError("folds do not cover every row exactly once")
    return CVRun(proba, [f.name for f in folds], chosen, seen)
