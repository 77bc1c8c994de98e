"""The declared selection rule: which evaluated settings ship, and which becomes the default.

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

from typing import Any

import numpy as np

from stance.evaluation.specs import REFERENCE_FAMILIES, result_training_set
from stance.labels import LABELS

BASELINE_FAMILIES = {"tfidf"}
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
              "training": result_training_set(r)}
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
