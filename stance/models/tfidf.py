"""The TF-IDF baseline: word 1-2 grams + char 2-5 grams, sublinear tf, and a linear classifier.

Saved with skops (no pickle): loading checks that every type in the file is a scikit-learn,
NumPy or SciPy type before anything is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from stance.labels import LABELS
from stance.models.base import StanceModel, check_labels, check_texts, expand_proba

WEIGHTS_FILE = "pipeline.skops"
_TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.", "builtins.")


def _softmax(scores: np.ndarray) -> np.ndarray:
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


class TfidfModel(StanceModel):
    """TF-IDF features and logistic regression (balanced class weights) or a linear SVM.

    ``classifier="logreg"`` gives calibrated-ish probabilities; ``"svm"`` (LinearSVC) turns
    its margins into probabilities with a softmax, which is not calibrated (its ECE shows it).
    """

    family = "tfidf"

    def __init__(self, C: float = 10.0, classifier: str = "logreg", seed: int = 0) -> None:
        super().__init__(seed)
        if classifier not in {"logreg", "svm"}:
            raise ValueError(f"classifier must be 'logreg' or 'svm', got {classifier!r}")
        self.C = C
        self.classifier = classifier

    def get_params(self) -> dict[str, Any]:
        return {"C": self.C, "classifier": self.classifier, "seed": self.seed}

    def _pipeline(self):
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import FeatureUnion, Pipeline
        from sklearn.svm import LinearSVC

        features = FeatureUnion(
            [
                ("word", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, lowercase=True)),
                ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True)),
            ]
        )
        if self.classifier == "logreg":
            # newton-cg: same optimum as lbfgs on these sparse features, about 6x faster here
            head = LogisticRegression(
                C=self.C, class_weight="balanced", solver="newton-cg", max_iter=1000, random_state=self.seed
            )
        else:
            head = LinearSVC(C=self.C, class_weight="balanced", random_state=self.seed)
        return Pipeline([("features", features), ("classifier", head)])

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> TfidfModel:
        """Fit on ``texts`` and their ``labels``; raises on unknown labels or non-str texts."""
        y = check_labels(labels)
        self.pipeline_ = self._pipeline().fit(check_texts(texts), y)
        return self

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        texts = check_texts(texts)
        if not texts:
            return np.zeros((0, len(LABELS)))
        head = self.pipeline_.named_steps["classifier"]
        present = [int(c) for c in head.classes_]
        if len(present) == 1:
            return expand_proba(np.ones((len(texts), 1)), present)
        if self.classifier == "logreg":
            return expand_proba(self.pipeline_.predict_proba(texts), present)
        scores = self.pipeline_.decision_function(texts)
        if scores.ndim == 1:  # two classes: one margin
            scores = np.stack([-scores, scores], axis=1)
        return expand_proba(_softmax(scores), present)

    def top_features(self, k: int = 15) -> dict[str, list[tuple[str, float]]]:
        """The ``k`` n-grams with the largest weight for each label present in training."""
        names = self.pipeline_.named_steps["features"].get_feature_names_out()
        head = self.pipeline_.named_steps["classifier"]
        coef = head.coef_
        present = [int(c) for c in head.classes_]
        if coef.shape[0] == 1:  # binary: row is the second class vs the first
            coef = np.vstack([-coef[0], coef[0]])
        return {
            LABELS[cls]: [(str(names[j]), round(float(coef[row, j]), 4)) for j in np.argsort(-coef[row])[:k]]
            for row, cls in enumerate(present)
        }

    def _save(self, folder: Path) -> None:
        import skops.io as sio

        sio.dump(self.pipeline_, folder / WEIGHTS_FILE)

    @classmethod
    def _load(cls, folder: Path, config: dict[str, Any]) -> TfidfModel:
        import skops.io as sio

        path = folder / WEIGHTS_FILE
        untrusted = sio.get_untrusted_types(file=path)
        foreign = [t for t in untrusted if not t.startswith(_TRUSTED_PREFIXES)]
        if foreign:
            raise ValueError(f"{path} contains types outside scikit-learn/NumPy/SciPy: {foreign}")
        model = cls(**config["params"])
        model.pipeline_ = sio.load(path, trusted=untrusted)
        return model
