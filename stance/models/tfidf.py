"""The TF-IDF baseline: word 1-2 grams + char 2-5 grams, sublinear tf, and a linear classifier.

``fit`` uses scikit-learn. The fitted pipeline is then compiled into plain arrays
(:class:`~stance.models.tfidf_compiled.CompiledTfidf`: each vectorizer's vocabulary, idf vector
and n-gram settings; the classifier's coefficients, intercepts and classes), and every
prediction runs on those with NumPy and scipy.sparse only, so loading a saved model imports
neither scikit-learn nor skops nor torch. A model with ``use_context`` keeps the context's
block as a second compiled engine in ``context/``.

Saved without pickle (the engine's ``tfidf.npz`` and ``vocabulary.json``) beside the stance
``config.json``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from stance.labels import LABELS
from stance.models.base import StanceModel, check_contexts, check_labels, check_texts
from stance.models.tfidf_compiled import ARRAYS_FILE, CompiledTfidf, vocabulary_terms

CONTEXT_DIR = "context"
LEGACY_FILE = "pipeline.skops"


class TfidfModel(StanceModel):
    """TF-IDF features and logistic regression (balanced class weights) or a linear SVM.

    ``classifier="logreg"`` gives calibrated-ish probabilities; ``"svm"`` (LinearSVC) turns
    its margins into probabilities with a softmax, which is not calibrated (its ECE shows it).
    After ``fit``, ``pipeline_`` is the scikit-learn pipeline and ``compiled_`` the arrays every
    prediction uses; a loaded model has only ``compiled_``.
    """

    family = "tfidf"

    def __init__(self, C: float = 10.0, classifier: str = "logreg", use_context: bool = False, seed: int = 0) -> None:
        super().__init__(seed)
        if classifier not in {"logreg", "svm"}:
            raise ValueError(f"classifier must be 'logreg' or 'svm', got {classifier!r}")
        self.C = C
        self.classifier = classifier
        self.use_context = use_context

    def _pipeline(self) -> Any:
        """The unfitted scikit-learn pipeline."""
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

    def fit(self, texts: Sequence[str], labels: Sequence[str], contexts: Sequence[str] | None = None) -> TfidfModel:
        """Fit on ``texts`` and their ``labels`` (and ``contexts`` when ``use_context``).

        With ``use_context`` the context is a third feature block (word 1-2 grams of the context
        string, its own idf and l2 norm) beside the sentence's word and char blocks, under one
        linear classifier. Raises on unknown labels, non-str texts or a context count mismatch.
        """
        y = check_labels(labels)
        texts = check_texts(texts)
        self.context_ = None
        if not self.use_context:
            self.pipeline_ = self._pipeline().fit(texts, y)
            self.compiled_ = CompiledTfidf.from_pipeline(self.pipeline_, self.classifier)
            return self
        import scipy.sparse as sp
        from sklearn.feature_extraction.text import TfidfVectorizer

        contexts = check_contexts(contexts, len(texts))
        self.pipeline_ = self._pipeline()
        features, head = self.pipeline_.named_steps["features"], self.pipeline_.named_steps["classifier"]
        context_vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, lowercase=True)
        x_sentence = features.fit_transform(texts)
        x_context = context_vectorizer.fit_transform(contexts) if any(c.strip() for c in contexts) else None
        head.fit(sp.hstack([x_sentence, x_context]).tocsr() if x_context is not None else x_sentence, y)
        # the one classifier is split into its sentence and context columns; the context part adds
        # its scores to the sentence part's (the intercept is counted once, in the sentence part)
        n_sentence = x_sentence.shape[1]
        self.compiled_ = CompiledTfidf.from_pipeline(self.pipeline_, self.classifier, slice(0, n_sentence))
        if x_context is None:
            return self
        whole = self.compiled_
        self.context_ = CompiledTfidf(whole.kind, whole.settings, vocabulary_terms(context_vectorizer.vocabulary_), [],
                                      context_vectorizer.idf_, np.zeros(0), head.coef_[:, n_sentence:],
                                      np.zeros_like(whole.intercept), whole.classes)
        return self

    def predict_proba(self, texts: Sequence[str], contexts: Sequence[str] | None = None) -> np.ndarray:
        """``(n, 3)`` probabilities in ``LABELS`` order, from the compiled arrays (never scikit-learn)."""
        texts = check_texts(texts)
        context = getattr(self, "context_", None)
        if context is None or not texts or len(self.compiled_.classes) == 1:
            return self.compiled_.predict_proba(texts)
        contexts = check_contexts(contexts, len(texts))
        scores = self.compiled_.decision_function(texts) + context.decision_function(contexts)
        return self.compiled_.proba_from_scores(scores)

    def top_features(self, k: int = 15) -> dict[str, list[tuple[str, float]]]:
        """The ``k`` n-grams with the largest weight for each label present in training."""
        compiled = self.compiled_
        names = compiled.feature_names()
        coef = compiled.coef
        present = [int(c) for c in compiled.classes]
        if coef.shape[0] == 1:  # binary: row is the second class vs the first
            coef = np.vstack([-coef[0], coef[0]])
        return {
            LABELS[cls]: [(names[j], round(float(coef[row, j]), 4)) for j in np.argsort(-coef[row])[:k]]
            for row, cls in enumerate(present)
        }

    def _save(self, folder: Path) -> None:
        self.compiled_.save(folder)
        if getattr(self, "context_", None) is not None:
            (folder / CONTEXT_DIR).mkdir(exist_ok=True)
            self.context_.save(folder / CONTEXT_DIR)

    @classmethod
    def _load(cls, folder: Path, config: dict[str, Any]) -> TfidfModel:
        if not (folder / ARRAYS_FILE).exists() and (folder / LEGACY_FILE).exists():
            raise ValueError(f"{folder} holds a baseline saved in the old skops format, which is no longer "
                             "read; retrain it with `make all` or `stance train`")
        model = cls(**config["params"])
        model.compiled_ = CompiledTfidf.load(folder)
        model.context_ = CompiledTfidf.load(folder / CONTEXT_DIR) if (folder / CONTEXT_DIR).is_dir() else None
        if model.compiled_.kind != model.classifier:
            raise ValueError(f"{folder}: config says {model.classifier!r}, arrays hold {model.compiled_.kind!r}")
        return model
