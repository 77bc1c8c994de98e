"""Training-data ablation: the shipped recipes refitted with held-back contrast parts added.

Writers F and G's contrast groups (``data/contrast/held_back/``) were written, blind-labelled and
adjudicated like the training set, but adding them lowered the default baseline's contrast pair
accuracy and challenge macro-F1 (paired CIs reaching zero) while the transformer's contrast figures
rose within their CIs; by the selection rule's mean of four figures no variant beat the shipped
training set for either model, so they are kept out of training. The decision was read off these
held-out sets. Seed LODO (the fourth figure of the selection rule) is measured too, with one
training seed per fold (the grid averages the spec's seeds), so every row has the rule's four
figures and their mean. :func:`held_back_ablation` is the measurement behind that decision: each
shipped recipe (the full grid's selection) is tuned and fitted exactly as
:func:`stance.evaluation.shipping.train_and_save` does, on the shipped training set and on it plus
each held-back part, and scored on the contrast test, the challenge set, the article test and the
two probes. Pair accuracy differences are paired over the same resampled contrast groups.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from stance.data.loaders import contrast_test_rows, extra_training_rows, held_back_contrast_rows, seed_rows
from stance.evaluation.heldout import article_test, challenge_test, contrast_test
from stance.evaluation.metrics import label_ids, macro_f1, pair_accuracy_ci, paired_comparison
from stance.evaluation.protocol import PROBES, columns, cross_validate, fit_tuned, lodo_folds
from stance.evaluation.selection import rule_score
from stance.evaluation.specs import ALL_SPECS, SEED, result_training_set

# writer -> contrast group prefix of the held-back part (BRIEF_writer_F.md, BRIEF_writer_G.md)
PARTS = {"F": "cF", "G": "cG"}


def training_variants() -> dict[str, list[dict[str, Any]]]:
    """The held-back rows each variant adds to the shipped training set: ``shipped`` (none), one
    entry per part of :data:`PARTS`, and all parts together."""
    held = held_back_contrast_rows()
    variants: dict[str, list[dict[str, Any]]] = {"shipped": []}
    for writer, prefix in PARTS.items():
        variants[f"+{writer}"] = [r for r in held if r["group"].startswith(prefix)]
    variants["+" + "+".join(PARTS)] = held
    return variants


def held_back_ablation(selection_path: Path, seed: int = SEED, n_boot: int = 1000) -> dict[str, Any]:
    """Refit each shipped recipe of ``selection_path`` (a grid's ``selection.json``) per training
    variant (:func:`training_variants`) and score it on the held-out sets.

    Returns ``{"seed", "n_boot", "rows": [...], "seconds"}``; a row per (shipped name, variant) holds the
    contrast-test pair accuracy with its CI, the paired difference from the ``shipped`` variant with
    its CI (groups resampled), contrast and challenge macro-F1, article side accuracy, seed LODO
    macro-F1 with its paired difference (sentences resampled), the selection rule's score
    (:func:`~stance.evaluation.selection.rule_score`; ``None`` when the rule excludes the model), the
    probes' predicted labels, the training rows offered (before :func:`fit_tuned` leaves out rows near a
    probe) and seconds. Raises ``FileNotFoundError`` when the selection,
    its metrics or a data set is missing.
    """
    began = time.perf_counter()
    selection = json.loads(selection_path.read_text())
    metrics = json.loads((selection_path.parent / "metrics.json").read_text())["results"]
    seeds = seed_rows()
    texts, labels, contexts = columns(seeds)
    docs, groups = np.array([r["doc"] for r in seeds]), np.array([r["group"] for r in seeds])
    test = contrast_test_rows()
    y_test, test_groups = label_ids([r["label"] for r in test]), [r["group"] for r in test]
    y_seeds, folds = label_ids(labels), lodo_folds(docs, groups)
    variants = training_variants()
    out: list[dict[str, Any]] = []
    for shipped in ("baseline", "transformer"):
        chosen = metrics[selection[shipped]]
        spec = ALL_SPECS[chosen["model"]]
        base = extra_training_rows(result_training_set(chosen))
        reference = lodo_reference = None
        for variant, added in variants.items():
            started = time.perf_counter()
            extra_texts, extra_labels, extra_contexts = columns(base + added)
            model, params = fit_tuned(spec, texts, labels, docs, groups, extra_texts, extra_labels, seed,
                                      contexts, extra_contexts)
            contrast, (pred,) = contrast_test(model, seed, n_boot)
            reference = pred if reference is None else reference
            paired = pair_accuracy_ci(y_test, pred, test_groups, n_boot, seed, baseline=reference)
            lodo = cross_validate(spec, texts, labels, docs, groups, folds, extra_texts, extra_labels, "lodo", seed,
                                  contexts=contexts, extra_contexts=extra_contexts).proba.argmax(1)
            lodo_reference = lodo if lodo_reference is None else lodo_reference
            challenge = challenge_test(model, seed, n_boot)[0]
            articles = article_test(model, seed, n_boot)[0]
            lodo_f1 = macro_f1(y_seeds, lodo)
            out.append({
                "shipped": shipped, "setting": selection[shipped], "variant": variant, "params": params,
                "added_sentences": len(added), "training_sentences": len(texts) + len(extra_texts),
                "pair_accuracy": contrast["pair_accuracy"], "pair_accuracy_ci": contrast["pair_accuracy_ci"],
                "pair_accuracy_difference": paired,
                "contrast_macro_f1": contrast["macro_f1"],
                "challenge_macro_f1": challenge["macro_f1"], "article_side_accuracy": articles["side_accuracy"],
                "lodo_macro_f1": lodo_f1,
                "lodo_difference": paired_comparison(y_seeds, [lodo], [lodo_reference], None, n_boot, seed),
                "rule_score": rule_score({"lodo": {"macro_f1": lodo_f1}, "challenge": challenge,
                                          "contrast_test": contrast, "article_test": articles}),
                "probes": dict(zip(PROBES, model.predict(list(PROBES)))),
                "seconds": round(time.perf_counter() - started, 1),
            })
            print(f"{shipped} {variant}: pair accuracy {contrast['pair_accuracy']:.3f}", flush=True)
    return {"seed": seed, "n_boot": n_boot, "rows": out, "seconds": round(time.perf_counter() - began, 1)}


def ablation_markdown(result: dict[str, Any]) -> str:
    """The table of :func:`held_back_ablation`'s result, with how it was made."""
    lines = [
        "# Held-back contrast parts: do writers F and G's groups help the shipped recipes?",
        "",
        "Each shipped recipe tuned (inner grouped CV) and fitted on the shipped training set, and on it plus "
        "each held-back part (`data/contrast/held_back/`), then scored on the held-out sets and by seed LODO "
        "(one training seed per fold; the grid averages the spec's seeds). Differences are paired against the "
        "shipped training set: pair accuracy over the same resampled contrast groups, LODO macro-F1 over "
        f"resampled seed sentences (95% CI, {result['n_boot']} resamples, seed {result['seed']}). The rule score "
        "is the selection rule's mean of LODO, challenge, pair accuracy and article side accuracy.",
        "",
        "| shipped model | training set | added sentences | contrast pair acc. [CI] | difference [CI] | "
        "contrast macro-F1 | challenge macro-F1 | article side acc. | seed LODO macro-F1 | LODO difference [CI] | "
        "rule score | probes right | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        low, high = row["pair_accuracy_ci"]
        diff, lodo = row["pair_accuracy_difference"], row["lodo_difference"]
        right = sum(label == "pro-encryption" for label in row["probes"].values())
        lines.append(
            f"| {row['shipped']} ({row['setting']}) | {row['variant']} | {row['added_sentences']} | "
            f"{row['pair_accuracy']:.3f} [{low:.2f}, {high:.2f}] | "
            f"{diff['difference']:+.3f} [{diff['ci_low']:+.2f}, {diff['ci_high']:+.2f}] | "
            f"{row['contrast_macro_f1']:.3f} | {row['challenge_macro_f1']:.3f} | "
            f"{row['article_side_accuracy']:.3f} | {row['lodo_macro_f1']:.3f} | "
            f"{lodo['difference']:+.3f} [{lodo['ci_low']:+.2f}, {lodo['ci_high']:+.2f}] | "
            f"{'excluded' if row['rule_score'] is None else format(row['rule_score'], '.3f')} | "
            f"{right} of {len(row['probes'])} | {row['seconds']:.0f} |"
        )
    lines += ["", f"Made by `make contrast-parts` (`python experiments/contrast_parts.py`) in {result['seconds']:.0f} s.", ""]
    return "\n".join(lines)
