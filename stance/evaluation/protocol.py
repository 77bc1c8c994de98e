"""How a spec is fitted and tested: the folds, nested tuning, and probe-free fitting.

* Folds: leave-one-document-out (primary) and repeated stratified group k-fold (secondary).
  No near-duplicate group ever has members on both sides of a fold: a leave-one-document-out
  fold drops from training every sentence whose group also occurs in the held-out document.
* Nested tuning: hyper-parameters are chosen on inner folds built from the outer training
  part only; the outer test fold is never seen by fitting or tuning.
* Extra training rows (the supplement) are added to every training fold, never to a test fold.
* A model fitted on every training row (for the held-out sets and for shipping) leaves out the
  rows that nearly duplicate a held-out behavioural probe (:func:`fit_tuned`).
* The training mini-articles are also held out by article (:func:`article_cv`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from stance.data.articles import load_set
from stance.data.similarity import near_duplicates_across
from stance.evaluation.metrics import article_metrics, macro_f1
from stance.evaluation.specs import SEED, ModelSpec
from stance.labels import LABEL_TO_ID, LABELS
from stance.models import StanceModel


@dataclass(frozen=True)
class Fold:
    """Indices into the evaluated rows: who trains and who is tested."""

    name: str
    train: np.ndarray
    test: np.ndarray


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


def columns(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[str], list[str]]:
    """Texts, labels and contexts (empty when a row has none) of labelled rows, in row order."""
    return [r["text"] for r in rows], [r["label"] for r in rows], [r.get("context", "") for r in rows]


def fit_tuned(
    spec: ModelSpec,
    texts: list[str],
    labels: list[str],
    docs: np.ndarray,
    groups: np.ndarray,
    extra_texts: list[str],
    extra_labels: list[str],
    seed: int,
    contexts: list[str] | None = None,
    extra_contexts: list[str] | None = None,
) -> tuple[StanceModel, dict[str, Any]]:
    """Tune ``spec`` by grouped CV over all given rows, then fit on all of them (+ extras).

    Rows that nearly duplicate a held-out behavioural probe (:data:`PROBES`) are left out, so the
    probes test what the model learned rather than what it memorised.
    """
    contexts = contexts if contexts is not None else [""] * len(texts)
    extra_contexts = extra_contexts if extra_contexts is not None else [""] * len(extra_texts)
    keep = probe_free(texts)
    texts, labels, contexts = [texts[i] for i in keep], [labels[i] for i in keep], [contexts[i] for i in keep]
    docs, groups = docs[keep], groups[keep]
    keep = probe_free(extra_texts)
    extra_texts, extra_labels = [extra_texts[i] for i in keep], [extra_labels[i] for i in keep]
    extra_contexts = [extra_contexts[i] for i in keep]
    everything = np.arange(len(texts))
    params, _ = tune(spec, texts, labels, docs, groups, everything, (extra_texts, extra_labels, extra_contexts),
                     "lodo", seed, contexts)
    model = spec.build(seed, **params)
    model.fit(texts + extra_texts, labels + extra_labels, contexts + extra_contexts)
    return model, params


# issue 15's held-out probes: every shipped model must label them pro-encryption, and no training row
# may be a near duplicate of them (one seed sentence, a quotation of Meta, is by word containment)
PROBES = ("Encryption protects children.", "Encryption keeps children safe from hackers.")


def probe_free(texts: Sequence[str]) -> list[int]:
    """Indices of ``texts`` that are not near duplicates (text rules) of a :data:`PROBES` sentence."""
    near = near_duplicates_across(list(texts), list(PROBES), use_embeddings=False) if texts else {}
    return [i for i in range(len(texts)) if i not in near]


def article_cv(spec: ModelSpec, params: dict[str, Any], seed_rows_: list[dict[str, Any]],
               extra_rows: list[dict[str, Any]], seed: int = SEED, n_splits: int = 5) -> dict[str, Any]:
    """Mini-articles held out by article (group 5-fold): every fold trains on the seeds and every
    other training row, with ``params`` (the setting tuned on the seed protocol), and predicts the
    held-out articles' sentences in context. Returns sentence macro-F1, article side accuracy and
    net-stance MAE over all held-out articles."""
    from sklearn.model_selection import GroupKFold

    articles = load_set("articles")[1]
    held = [i for i, r in enumerate(extra_rows) if r.get("source") == "articles"]
    other = [i for i, r in enumerate(extra_rows) if r.get("source") != "articles"]
    rows = [extra_rows[i] for i in held]
    docs = np.array([r["doc"] for r in rows])
    proba = np.zeros((len(rows), len(LABELS)))
    base = list(seed_rows_) + [extra_rows[i] for i in other]
    for train, test in GroupKFold(n_splits=n_splits).split(docs, groups=docs):
        model = spec.build(seed, **params)
        fit_rows = base + [rows[i] for i in train]
        model.fit(*columns(fit_rows))
        proba[test] = model.predict_proba([rows[i]["text"] for i in test], [rows[i]["context"] for i in test])
    metrics, _, _ = article_metrics(proba, rows, articles, seed, 200)
    return {key: metrics[key] for key in ("macro_f1", "macro_f1_ci_articles", "side_accuracy", "side_accuracy_ci",
                                          "side_accuracy_gold_labels", "net_stance_mae", "articles", "per_class")}
