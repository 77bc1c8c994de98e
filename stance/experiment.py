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
from stance.aggregate import article_label, article_side, net_stance
from stance.data import (
    EXTRA_SETS,
    challenge_rows,
    contrast_test_rows,
    data_hash,
    extra_training_rows,
    seed_rows,
)
from stance.evaluation import (
    CVRun,
    ModelSpec,
    accuracy,
    bootstrap_ci,
    compute_metrics,
    cross_validate,
    group_kfold_folds,
    lodo_folds,
    pair_accuracy,
    pair_accuracy_ci,
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
# On seeds + every own-words set (~4.8k rows) one TF-IDF fit takes ~3 s, so the C of each outer fold
# is tuned on one stratified group hold-out of its training rows and the k-fold runs once
_TFIDF_PROTOCOL = {"max_repeats": 1, "single_inner_split": True}
BASELINE_SPECS = [
    ModelSpec("tfidf-logreg", "tfidf", {"classifier": "logreg"}, {"C": [1.0, 10.0]}, **_TFIDF_PROTOCOL),
    ModelSpec("tfidf-svm", "tfidf", {"classifier": "svm"}, {"C": [0.1, 1.0, 10.0]}, **_TFIDF_PROTOCOL),
]
CONTEXT_BASELINE_SPECS = [
    ModelSpec("tfidf-logreg-context", "tfidf", {"classifier": "logreg", "use_context": True}, {"C": [1.0, 10.0]},
              **_TFIDF_PROTOCOL),
]
EMBEDDING_SPECS = [
    ModelSpec("minilm-frozen-logreg", "embedding-logreg", {}, {"C": [0.1, 1.0, 10.0]}, max_repeats=1,
              single_inner_split=True),
]
# all-mpnet-base-v2 (768 wide) frozen: every fit is a logistic regression on cached embeddings, but
# 4-5k rows x 768-1536 columns make each fit seconds, so its C is tuned on one inner hold-out and the
# k-fold runs once
MPNET = {"encoder": "mpnet"}
MPNET_SPECS = [
    ModelSpec("mpnet-frozen-logreg", "embedding-logreg", MPNET, {"C": [0.1, 1.0, 10.0]}, max_repeats=1,
              single_inner_split=True),
    ModelSpec("mpnet-frozen-logreg-context", "embedding-logreg", {**MPNET, "use_context": True},
              {"C": [0.1, 1.0, 10.0]}, max_repeats=1, single_inner_split=True),
]
# soft voting of the TF-IDF baseline and a frozen encoder (issue 15 measured ~0.72 on real text outside
# the project for TF-IDF + mpnet); members' settings fixed a priori (C = 10 and 1), equal weights
MINILM = {"encoder": "minilm"}


def _ensemble_spec(encoder: dict[str, str], context: bool) -> ModelSpec:
    """TF-IDF (C = 10) and a logistic head (C = 1) on a frozen ``encoder``, averaged with equal weights."""
    extra = {"use_context": True} if context else {}
    members = [{"family": "tfidf", "params": {"classifier": "logreg", "C": 10.0, **extra}},
               {"family": "embedding-logreg", "params": {**encoder, "C": 1.0, **extra}}]
    name = f"ensemble-tfidf-{encoder['encoder']}" + ("-context" if context else "")
    return ModelSpec(name, "ensemble", {"members": members}, max_repeats=1)


ENSEMBLE_SPECS = [_ensemble_spec(encoder, context) for encoder in (MINILM, MPNET) for context in (False, True)]
TRANSFORMER_SPECS = [
    # One fine-tuning on seeds + supplement takes ~100 s (3 epochs) and one SetFit ~60 s (800 pairs)
    # on an idle 2-core machine, so a full nested grid would take hours. The fine-tuning's learning
    # rate is chosen per outer fold on one stratified group hold-out of its training rows (2 extra
    # fits per fold), with a fixed budget of 3 epochs; SetFit's budget is fixed. Several training
    # seeds per LODO fold for the fine-tuning, one k-fold repeat each.
    ModelSpec("minilm-finetune", "transformer", {"epochs": 3}, {"learning_rate": [3e-5, 1e-4]},
              seeds_per_fold=3, max_repeats=1, single_inner_split=True),
    ModelSpec("minilm-setfit", "setfit", {"max_pairs": 800}, max_repeats=1),
    # on seeds + every own-words set (~5k rows) one fine-tuning takes 8-17 minutes on 2 shared cores,
    # so the learning rate is the one the seeds + supplement grid chose in every fold (1e-4), 2 epochs,
    # and only the model fitted on all training rows is scored (final_only: the rule cannot pick it)
    ModelSpec("minilm-finetune-2ep", "transformer", {"epochs": 2, "learning_rate": 1e-4}, final_only=True),
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


def training_set_name(extra: str | bool) -> str:
    """The name of an extra training set (:data:`stance.data.EXTRA_SETS`); ``True``/``False``
    mean ``supplement``/``none`` (the settings before the contrast data existed)."""
    if isinstance(extra, bool):
        return "supplement" if extra else "none"
    if extra not in EXTRA_SETS:
        raise ValueError(f"unknown training set {extra!r}; known: {sorted(EXTRA_SETS)}")
    return extra


def _columns(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[str], list[str]]:
    return [r["text"] for r in rows], [r["label"] for r in rows], [r.get("context", "") for r in rows]


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
    texts, labels, contexts = _columns(rows)
    docs = np.array([r["doc"] for r in rows])
    groups = np.array([r["group"] for r in rows])
    extra_rows = extra_training_rows(extra)
    extra_texts, extra_labels, extra_contexts = _columns(extra_rows)
    started = time.perf_counter()
    result: dict[str, Any] = {"model": spec.name, "family": spec.family, "params": spec.params, "grid": spec.grid,
                              "training": extra, "supplement": extra != "none", "seed": seed}
    oof: dict[str, list[np.ndarray]] = {}
    if not spec.final_only:
        _seed_folds(spec, result, oof, rows, extra_rows, repeats, seed, n_boot)
    if challenge:
        model, result["final_params"] = fit_tuned(spec, texts, labels, docs, groups, extra_texts, extra_labels,
                                                  seed, contexts, extra_contexts)
        result["challenge"], oof["challenge"] = _challenge(model, seed, n_boot)
        result["behavioural"] = _behavioural(model)
        if _built("contrast_test"):
            result["contrast_test"], oof["contrast_test"] = contrast_test(model, seed, n_boot)
        if _built("article_test"):
            result["article_test"], oof["article_test"], oof["article_test_sides"] = article_test(model, seed, n_boot)
        if extra == "all" and _built("articles") and not spec.final_only:
            result["article_cv"] = article_cv(spec, result["final_params"], rows, extra_rows, seed)
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result, oof


def _seed_folds(spec: ModelSpec, result: dict[str, Any], oof: dict[str, list[np.ndarray]],
                rows: list[dict[str, Any]], extra_rows: list[dict[str, Any]], repeats: int, seed: int,
                n_boot: int) -> None:
    """Seed LODO (every training seed of the spec) and repeated group k-fold, into ``result``/``oof``."""
    texts, labels, contexts = _columns(rows)
    extra_texts, extra_labels, extra_contexts = _columns(extra_rows)
    docs = np.array([r["doc"] for r in rows])
    groups = np.array([r["group"] for r in rows])
    y = _ids(labels)
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


def _built(name: str) -> bool:
    folder = paths.data_dir() / name
    return (folder / ("articles.csv" if name in {"articles", "article_test"} else f"{name}.csv")).exists()


def contrast_test(model: StanceModel, seed: int = SEED, n_boot: int = 1000) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Macro-F1 and pair accuracy (with 95% CIs over contrast groups) of ``model`` on the contrast
    test set, per construction and per register."""
    rows = contrast_test_rows()
    y = _ids([r["label"] for r in rows])
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


def article_sides(doc_ids: Sequence[str], labels: np.ndarray) -> dict[str, tuple[str, float]]:
    """Per article: the side by :func:`stance.aggregate.article_label` and the net stance, from
    its sentences' label ids."""
    out = {}
    docs = np.asarray(doc_ids)
    for doc in dict.fromkeys(doc_ids):
        counts = np.bincount(labels[docs == doc], minlength=len(LABELS))
        out[doc] = (article_side(article_label(counts)), net_stance(counts))
    return out


def article_test(model: StanceModel, seed: int = SEED, n_boot: int = 1000
                 ) -> tuple[dict[str, Any], list[np.ndarray], list[np.ndarray]]:
    """The article-level test: sentence macro-F1 in context, the article side (pro-encryption /
    pro-scanning / neutral-or-balanced) against the writer's, and the mean absolute error of the
    net stance from predicted against from gold sentence labels. CIs resample whole articles."""
    from stance.articles import load_set

    rows, articles = load_set("article_test")
    return _article_metrics(model.predict_proba([r["text"] for r in rows], [r["context"] for r in rows]),
                            rows, articles, seed, n_boot)


def _article_metrics(proba: np.ndarray, rows: list[dict[str, Any]], articles: list[dict[str, str]], seed: int,
                     n_boot: int) -> tuple[dict[str, Any], list[np.ndarray], list[np.ndarray]]:
    y = _ids([r["label"] for r in rows])
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


def article_cv(spec: ModelSpec, params: dict[str, Any], seed_rows_: list[dict[str, Any]],
               extra_rows: list[dict[str, Any]], seed: int = SEED, n_splits: int = 5) -> dict[str, Any]:
    """Mini-articles held out by article (group 5-fold): every fold trains on the seeds and every
    other training row, with ``params`` (the setting tuned on the seed protocol), and predicts the
    held-out articles' sentences in context. Returns sentence macro-F1, article side accuracy and
    net-stance MAE over all held-out articles."""
    from sklearn.model_selection import GroupKFold

    from stance.articles import load_set

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
        model.fit(*_columns(fit_rows))
        proba[test] = model.predict_proba([rows[i]["text"] for i in test], [rows[i]["context"] for i in test])
    metrics, _, _ = _article_metrics(proba, rows, articles, seed, 200)
    return {key: metrics[key] for key in ("macro_f1", "macro_f1_ci_articles", "side_accuracy", "side_accuracy_ci",
                                          "side_accuracy_gold_labels", "net_stance_mae", "articles", "per_class")}


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
    from stance.similarity import near_duplicates_across

    near = near_duplicates_across(list(texts), list(PROBES), use_embeddings=False) if texts else {}
    return [i for i in range(len(texts)) if i not in near]


def paired_against(
    baseline_oof: dict[str, list[np.ndarray]], oof: dict[str, list[np.ndarray]], seed: int = SEED
) -> dict[str, dict[str, float]]:
    """Paired bootstrap of a model against the baseline on every shared evaluation."""
    rows = seed_rows()
    y = _ids([r["label"] for r in rows])
    docs = np.array([r["doc"] for r in rows])
    out = {}
    for key in ("lodo", "kfold"):
        if key not in oof or key not in baseline_oof:
            continue
        out[key] = paired_comparison(y, oof[key], baseline_oof[key], None, 1000, seed)
        out[f"{key}_documents"] = paired_comparison(y, oof[key], baseline_oof[key], docs, 1000, seed)
    if oof.get("challenge") and baseline_oof.get("challenge"):
        y_challenge = _ids([r["label"] for r in challenge_rows()])
        out["challenge"] = paired_comparison(y_challenge, oof["challenge"], baseline_oof["challenge"], None,
                                             1000, seed)
    if oof.get("contrast_test") and baseline_oof.get("contrast_test"):
        contrast = contrast_test_rows()
        y_contrast = _ids([r["label"] for r in contrast])
        groups = np.array([r["group"] for r in contrast])
        out["contrast_pairs"] = pair_accuracy_ci(y_contrast, oof["contrast_test"][0], groups, 1000, seed,
                                                 baseline=baseline_oof["contrast_test"][0])
        out["contrast_macro_f1"] = paired_comparison(y_contrast, oof["contrast_test"], baseline_oof["contrast_test"],
                                                     groups, 1000, seed)
    if oof.get("article_test_sides") and baseline_oof.get("article_test_sides"):
        from stance.articles import load_set

        articles = load_set("article_test")[1]
        side_ids = {side: k for k, side in enumerate(("pro-encryption", "pro-scanning", "neutral-or-balanced"))}
        written = np.array([side_ids[a["side"]] for a in articles])
        out["article_sides"] = paired_comparison(written, oof["article_test_sides"], baseline_oof["article_test_sides"],
                                                 None, 1000, seed, accuracy)
    return out


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
    texts, labels, contexts = _columns(rows)
    extra_texts, extra_labels, extra_contexts = _columns(extra_rows)
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
        "- Trained on: " + ", ".join(f"{n} {source}" for source, n in training["sentences_by_source"].items())
        + " sentences",
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
        "- The supplement, contrast groups and mini-articles are synthetic (written for the project by AI",
        "  helper sessions); the challenge, contrast and article test sets were written independently of",
        "  them, but also for the project, not sampled from published text.",
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
    contrast, articles = metrics.get("contrast_test"), metrics.get("article_test")
    if contrast:
        lines += ["## Contrast test set", f"macro-F1 {contrast['macro_f1']:.3f}; pair accuracy "
                  f"{contrast['pair_accuracy']:.3f} (95% CI {_fmt_ci(contrast['pair_accuracy_ci'])}, "
                  f"{contrast['pairs']} within-group pairs)", ""]
    if articles:
        lines += ["## Article-level test", f"sentence macro-F1 {articles['macro_f1']:.3f}; article side accuracy "
                  f"{articles['side_accuracy']:.3f} (95% CI {_fmt_ci(articles['side_accuracy_ci'])}, "
                  f"{articles['articles']} articles); net-stance MAE {articles['net_stance_mae']:.3f}", ""]
    return "\n".join(lines) + "\n"


def results_path(name: str) -> Path:
    folder = paths.results_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name
