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
