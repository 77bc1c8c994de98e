"""Per-article summaries of sentence predictions (shared by the API, the CLI and Ray)."""

from __future__ import annotations

from typing import Any

import numpy as np

from stance.labels import LABELS

ENCRYPTION, SCANNING = LABELS.index("pro-encryption"), LABELS.index("pro-scanning")


def net_stance(counts: np.ndarray) -> float:
    """``(n_pro_encryption - n_pro_scanning) / (n_pro_encryption + n_pro_scanning)``.

    In [-1, 1]: -1 when every non-neutral sentence is pro-scanning, +1 when every one is
    pro-encryption, 0 when they balance or when no sentence takes a side.
    """
    sided = counts[ENCRYPTION] + counts[SCANNING]
    return 0.0 if sided == 0 else float((counts[ENCRYPTION] - counts[SCANNING]) / sided)


def summarise(proba: np.ndarray) -> dict[str, Any]:
    """Counts, shares and mean probability per label, and the net stance, of ``(n, 3)`` proba."""
    n = int(proba.shape[0])
    counts = np.bincount(proba.argmax(axis=1), minlength=len(LABELS)) if n else np.zeros(len(LABELS), int)
    means = proba.mean(axis=0) if n else np.zeros(len(LABELS))
    summary: dict[str, Any] = {"n_sentences": n}
    for i, label in enumerate(LABELS):
        summary[f"n_{label}"] = int(counts[i])
        summary[f"share_{label}"] = float(counts[i] / n) if n else 0.0
        summary[f"mean_p_{label}"] = float(means[i])
    summary["net_stance"] = net_stance(counts)
    return summary


# Article-level label rule, declared before the article-level test was run: an article whose
# sentences mostly take no side is neutral coverage; one whose sided sentences lean clearly one way
# takes that side; otherwise it is mixed.
ENGAGEMENT_MIN = 0.2
BALANCE_MIN = 1 / 3
ARTICLE_LABELS = ("pro-encryption", "pro-scanning", "mixed", "neutral coverage")


def article_label(counts: np.ndarray) -> str:
    """The article-level label from per-label sentence counts (``LABELS`` order).

    *engagement* = (n_enc + n_scan) / n; *balance* = (n_enc - n_scan) / (n_enc + n_scan).
    ``neutral coverage`` when engagement < 0.2 (or no sentence); else ``pro-encryption`` when
    balance >= 1/3, ``pro-scanning`` when balance <= -1/3, and ``mixed`` in between.
    """
    counts = np.asarray(counts)
    n = int(counts.sum())
    sided = int(counts[ENCRYPTION] + counts[SCANNING])
    if n == 0 or sided / n < ENGAGEMENT_MIN:
        return "neutral coverage"
    balance = net_stance(counts)
    if balance >= BALANCE_MIN:
        return "pro-encryption"
    if balance <= -BALANCE_MIN:
        return "pro-scanning"
    return "mixed"


def article_side(label: str) -> str:
    """The three-way article side of an :data:`ARTICLE_LABELS` value: mixed and neutral coverage
    both count as ``neutral-or-balanced``."""
    if label not in ARTICLE_LABELS:
        raise ValueError(f"unknown article label {label!r}; known: {ARTICLE_LABELS}")
    return label if label in {"pro-encryption", "pro-scanning"} else "neutral-or-balanced"
