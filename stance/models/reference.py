"""Reference rows: majority class, stratified random, and a frozen keyword rule.

They meet the model contract so that every table shows how far above trivial a model is.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from stance.labels import LABEL_TO_ID, LABELS
from stance.models.base import StanceModel, check_labels, check_texts


class MajorityModel(StanceModel):
    """Always predicts the most frequent training label (probabilities: one-hot)."""

    family = "majority"

    def fit(self, texts: Sequence[str], labels: Sequence[str], contexts: Sequence[str] | None = None) -> MajorityModel:
        counts = np.bincount(check_labels(labels), minlength=len(LABELS))
        self.majority_ = int(np.argmax(counts))
        return self

    def predict_proba(self, texts: Sequence[str], contexts: Sequence[str] | None = None) -> np.ndarray:
        proba = np.zeros((len(check_texts(texts)), len(LABELS)))
        proba[:, self.majority_] = 1.0
        return proba


class StratifiedRandomModel(StanceModel):
    """Draws a label at random from the training label distribution (seeded per text)."""

    family = "stratified-random"

    def fit(self, texts: Sequence[str], labels: Sequence[str], contexts: Sequence[str] | None = None) -> StratifiedRandomModel:
        counts = np.bincount(check_labels(labels), minlength=len(LABELS))
        self.prior_ = counts / counts.sum()
        return self

    def predict_proba(self, texts: Sequence[str], contexts: Sequence[str] | None = None) -> np.ndarray:
        texts = check_texts(texts)
        rng = np.random.default_rng(self.seed)
        draws = rng.choice(len(LABELS), size=len(texts), p=self.prior_)
        proba = np.zeros((len(texts), len(LABELS)))
        proba[np.arange(len(texts)), draws] = 1.0
        return proba


# Written once, before any model was evaluated, and frozen: a handful of cue words per side.
KEYWORDS: dict[str, tuple[str, ...]] = {
    "pro-scanning": (
        "safe haven", "place to hide", "hiding place", "undetected", "blind eye", "paedophile",
        "grooming", "safeguards", "duty of care", "detect", "lawful access", "warrant",
    ),
    "pro-encryption": (
        "privacy", "backdoor", "back door", "surveillance", "hackers", "secure", "security",
        "private communications", "dissidents", "client-side scanning", "false positive",
    ),
}
_PATTERNS = {
    label: re.compile("|".join(re.escape(w) for w in words), re.IGNORECASE) for label, words in KEYWORDS.items()
}


class KeywordRuleModel(StanceModel):
    """Counts cue words per side; more cues for a side wins, a tie or none is ``neutral``.

    Probabilities put 0.8 on the chosen label and 0.1 on each other. ``fit`` learns nothing.
    """

    family = "keyword-rule"

    def fit(self, texts: Sequence[str], labels: Sequence[str], contexts: Sequence[str] | None = None) -> KeywordRuleModel:
        check_labels(labels)
        return self

    def predict_proba(self, texts: Sequence[str], contexts: Sequence[str] | None = None) -> np.ndarray:
        texts = check_texts(texts)
        proba = np.full((len(texts), len(LABELS)), 0.1)
        for row, text in enumerate(texts):
            hits = {label: len(pattern.findall(text)) for label, pattern in _PATTERNS.items()}
            if hits["pro-scanning"] > hits["pro-encryption"]:
                choice = "pro-scanning"
            elif hits["pro-encryption"] > hits["pro-scanning"]:
                choice = "pro-encryption"
            else:
                choice = "neutral"
            proba[row, LABEL_TO_ID[choice]] = 0.8
        return proba
