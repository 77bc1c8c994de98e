"""Per-article summaries of sentence predictions (the scoring kernel's, so the API, the CLI and Ray share them)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
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


BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0


def _ratio(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(bottom > 0, top / np.where(bottom > 0, bottom, 1), np.nan)


MIN_SENTENCES_FOR_INTERVAL = 2  # one sentence resamples to itself: no interval rather than a false [x, x]


def _interval(values: np.ndarray) -> tuple[float | None, float | None]:
    values = values[np.isfinite(values)]
    if not len(values):
        return None, None
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def _intervals(*samples: np.ndarray) -> list[tuple[float | None, float | None]]:
    """:func:`_interval` of each sample: one percentile call for all that are wholly finite (the
    same numbers as one call each, in a fraction of the time), one call each for the others."""
    finite = [bool(np.isfinite(values).all()) and len(values) > 0 for values in samples]
    together = [values for values, ok in zip(samples, finite) if ok]
    bounds = iter(np.percentile(np.stack(together), [2.5, 97.5], axis=1).T.tolist() if together else [])
    return [tuple(next(bounds)) if ok else _interval(values) for values, ok in zip(samples, finite)]


# resamples of every article length up to this many sentences are kept (9.4 MB at most), since drawing
# them costs as much as the rest of a summary
_CACHED_RESAMPLE_SENTENCES = 48


@lru_cache(maxsize=_CACHED_RESAMPLE_SENTENCES)
def _cached_resamples(n: int, resamples: int, seed: int) -> np.ndarray:
    rows = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    rows.flags.writeable = False
    return rows


def resample_rows(n: int, resamples: int, seed: int) -> np.ndarray:
    """``(resamples, n)`` sentence indices of the bootstrap resamples: ``default_rng(seed).integers(0, n)``.

    The same for every article of ``n`` sentences (read-only; cached for short articles).
    """
    if n <= _CACHED_RESAMPLE_SENTENCES:
        return _cached_resamples(n, resamples, seed)
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def summarise(proba: np.ndarray, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> dict[str, Any]:
    """The article summary of ``(n, len(LABELS))`` sentence probabilities; separates how much from which way.

    With n sentences, n_enc and n_scan the sentences labelled each side (argmax) and p_enc, p_scan
    the summed probabilities:

    * ``engagement`` = (n_enc + n_scan) / n in [0, 1]: how much of the article takes a side;
      ``engagement_expected`` = (p_enc + p_scan) / n, its expectation under the probabilities;
    * ``balance`` = (n_enc - n_scan) / (n_enc + n_scan) in [-1, 1]: which way the sided sentences
      lean; ``None`` when no sentence takes a side (``net_stance`` is the same with 0.0 there, kept
      as an alias for one release);
    * ``stance_index`` = (p_enc - p_scan) / n in [-1, 1]: both at once; near 0 for neutral coverage
      and for a balanced debate, near +-1 for a one-sided piece;
    * each with a 95 % percentile interval (``*_ci_low``, ``*_ci_high``) from ``resamples``
      bootstrap resamples of the article's sentences (Efron & Tibshirani 1993), drawn with
      ``numpy.random.default_rng(seed)`` so the same article gets the same interval; ``None``
      when undefined (fewer than 2 sentences, or no resample with a sided sentence for ``balance``);
    * ``article_label`` by :func:`article_label` (declared before the article test was run);
    * per label: ``n_<label>``, ``share_<label>`` = n_<label> / n, ``mean_p_<label>``.
    """
    return summarise_many([proba], resamples, seed)[0]


# which bootstrap sample gives which interval, in the order _summary_and_samples lists them
_SAMPLED = (("engagement_ci_low", "engagement_ci_high"), ("stance_index_ci_low", "stance_index_ci_high"),
            ("balance_ci_low", "balance_ci_high"))


def _summary_and_samples(proba: np.ndarray, resamples: int, seed: int) -> tuple[dict[str, Any], list[np.ndarray]]:
    """One article's summary with its intervals still ``None``, and the bootstrap samples they come
    from (engagement, stance index, and balance when a sentence takes a side)."""
    proba = np.asarray(proba, dtype=float)
    n = int(proba.shape[0])
    labels = proba.argmax(axis=1) if n else np.zeros(0, int)
    counts = np.bincount(labels, minlength=len(LABELS))
    means = proba.mean(axis=0) if n else np.zeros(len(LABELS))
    summary: dict[str, Any] = {"n_sentences": n}
    for i, label in enumerate(LABELS):
        summary[f"n_{label}"] = int(counts[i])
        summary[f"share_{label}"] = float(counts[i] / n) if n else 0.0
        summary[f"mean_p_{label}"] = float(means[i])
    if not n:
        summary.update(dict.fromkeys(["engagement", "engagement_expected", "engagement_ci_low", "engagement_ci_high",
                                      "balance", "balance_ci_low", "balance_ci_high", "stance_index",
                                      "stance_index_ci_low", "stance_index_ci_high"]))
        summary.update(article_label="neutral coverage", net_stance=0.0)
        return summary, []
    enc, scan = (labels == ENCRYPTION).astype(float), (labels == SCANNING).astype(float)
    lean = proba[:, ENCRYPTION] - proba[:, SCANNING]
    rows = resample_rows(n, resamples if n >= MIN_SENTENCES_FOR_INTERVAL else 0, seed)
    boot_enc, boot_scan = enc[rows].sum(axis=1), scan[rows].sum(axis=1)
    sided = counts[ENCRYPTION] + counts[SCANNING]
    samples = [(boot_enc + boot_scan) / n, lean[rows].mean(axis=1)]
    if sided:
        samples.append(_ratio(boot_enc - boot_scan, boot_enc + boot_scan))
    summary["engagement"] = float(sided / n)
    summary["engagement_expected"] = float((proba[:, ENCRYPTION] + proba[:, SCANNING]).mean())
    summary["engagement_ci_low"] = summary["engagement_ci_high"] = None
    summary["balance"] = float((counts[ENCRYPTION] - counts[SCANNING]) / sided) if sided else None
    summary["balance_ci_low"] = summary["balance_ci_high"] = None
    summary["stance_index"] = float(lean.mean())
    summary["stance_index_ci_low"] = summary["stance_index_ci_high"] = None
    summary["article_label"] = article_label(counts)
    summary["net_stance"] = net_stance(counts)
    return summary, samples


def summarise_many(probas: Sequence[np.ndarray], resamples: int = BOOTSTRAP_RESAMPLES,
                   seed: int = BOOTSTRAP_SEED) -> list[dict[str, Any]]:
    """:func:`summarise` of each of ``probas`` (same dicts, same numbers), with the percentiles of
    all their bootstrap samples taken in one call, which is most of a summary's cost."""
    parts = [_summary_and_samples(proba, resamples, seed) for proba in probas]
    found = iter(_intervals(*(sample for _, samples in parts for sample in samples)))
    for summary, samples in parts:
        for keys, _ in zip(_SAMPLED, samples):
            summary[keys[0]], summary[keys[1]] = next(found)
    return [summary for summary, _ in parts]


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
