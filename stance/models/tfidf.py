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

from bisect import bisect_right
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from stance.labels import LABELS
from stance.models.base import StanceModel, check_contexts, check_labels, check_texts
from stance.models.explain import Attribution, check_explain_inputs, top_k, word_spans
from stance.models.tfidf_compiled import ARRAYS_FILE, CompiledTfidf, vocabulary_terms

CONTEXT_DIR = "context"
LEGACY_FILE = "pipeline.skops"


class Contributions(NamedTuple):
    """One text's margin for its predicted ``label`` split into parts (see :meth:`TfidfModel.contributions`).

    ``spans``: ``(start, end, part)`` per word or phrase of the text, in text order.
    """

    label: str
    margin: float
    intercept: float
    context: float
    unattributed: float
    spans: list[tuple[int, int, float]]


def _class_rows(values: np.ndarray) -> np.ndarray:
    """One row per class seen in training: a binary model's single row ``r`` becomes ``[0, r]``."""
    return np.vstack([np.zeros_like(values[0]), values[0]]) if values.shape[0] == 1 else values


def _attribute(text: str, occurrences: dict[int, list[tuple[int, int]]], parts: dict[int, float],
               n_word: int) -> tuple[list[tuple[int, int, float]], float]:
    """Spread each column's ``part`` over its occurrences' words or phrases (rules in
    :meth:`TfidfModel.contributions`); returns ``(start, end, part)`` per span and the unattributed rest."""
    words = word_spans(text)
    starts = [s for s, _ in words]

    def word_at(position: int) -> tuple[int, int]:
        return words[bisect_right(starts, position) - 1]

    totals: dict[tuple[int, int], float] = {}
    unattributed = 0.0
    for column, part in parts.items():
        places = occurrences[column]
        share = part / len(places)
        for start, end in places:
            if column < n_word:  # a token lies inside one word; a bigram spans its two words
                targets = [(word_at(start)[0], word_at(end - 1)[1])]
            else:
                targets = [w for w in words if w[0] < end and start < w[1]]
                if not targets:  # punctuation only: the nearest word of the same chunk
                    left = start
                    while left > 0 and not text[left - 1].isspace():
                        left -= 1
                    right = end
                    while right < len(text) and not text[right].isspace():
                        right += 1
                    inside = [w for w in words if left <= w[0] and w[1] <= right]
                    targets = [min(inside, key=lambda w: min(abs(w[0] - end), abs(start - w[1])))] if inside else []
            if not targets:
                unattributed += share
            for target in targets:
                totals[target] = totals.get(target, 0.0) + share / len(targets)
    return [(s, e, float(w)) for (s, e), w in sorted(totals.items())], float(unattributed)


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

    def contributions(self, texts: Sequence[str], contexts: Sequence[str] | None = None) -> list[Contributions]:
        """Exact decomposition of each text's margin for its predicted label into spans of the text.

        The margin is the predicted label's score minus the mean score of the other labels seen
        in training (scores: the linear model's logits, or an SVM's margins; a binary model's one
        score ``s`` counts as ``0`` for the first class and ``s`` for the second). Being linear,
        it is a sum over features of ``tfidf value * (coef[label] - mean coef[others])``, plus the
        same difference of intercepts and the context block's part. Each feature's part is split
        equally over its occurrences (:meth:`CompiledTfidf.occurrences`): a word unigram's goes
        to the word holding it, a bigram's to the phrase from its first word to its second; a
        char n-gram's is shared equally by the words (:func:`~stance.models.explain.word_spans`)
        it overlaps, or, when it covers only punctuation, by the nearest word of its
        whitespace-separated chunk; a chunk without a word (e.g. a dash) is ``unattributed``.
        The context block's features are not words of the sentence and are only its ``context``
        term. So ``intercept + context + unattributed + sum(spans) == margin`` up to rounding.
        Raises ``TypeError``/``ValueError`` as :meth:`predict_proba` does.
        """
        texts = check_texts(texts)
        contexts = check_contexts(contexts, len(texts))
        compiled, context = self.compiled_, getattr(self, "context_", None)
        proba = self.predict_proba(texts, contexts)
        x_word, x_char = compiled.features(texts) if texts else (None, None)
        coef, intercept = _class_rows(compiled.coef), _class_rows(compiled.intercept[:, None])[:, 0]
        context_scores = (_class_rows(np.atleast_2d(context.decision_function(contexts).T).T)
                          if context is not None and texts and len(compiled.classes) > 1 else None)
        present = [int(c) for c in compiled.classes]
        n_word = len(compiled.word_terms)
        out = []
        for i, text in enumerate(texts):
            label = int(np.argmax(proba[i]))
            if len(present) == 1:
                out.append(Contributions(LABELS[label], 0.0, 0.0, 0.0, 0.0, []))
                continue
            row = present.index(label)
            others = [r for r in range(len(present)) if r != row]
            direction = coef[row] - coef[others].mean(axis=0)
            values = {int(j): v for j, v in zip(x_word[i].indices, x_word[i].data)}
            values.update({n_word + int(j): v for j, v in zip(x_char[i].indices, x_char[i].data)})
            parts = {j: values[j] * direction[j] for j in values}
            spans, unattributed = _attribute(text, compiled.occurrences(text), parts, n_word)
            context_part = 0.0
            if context_scores is not None:
                context_part = float(context_scores[i, row] - context_scores[i, others].mean())
            intercept_part = float(intercept[row] - intercept[others].mean())
            margin = intercept_part + context_part + float(sum(parts.values()))
            out.append(Contributions(LABELS[label], margin, intercept_part, context_part, unattributed, spans))
        return out

    def attributions(self, texts: Sequence[str], contexts: Sequence[str] | None = None, k: int = 5
                     ) -> list[list[Attribution]]:
        """The ``k`` spans with the largest positive part of the margin (:meth:`contributions`;
        unit: logit of the predicted label minus the mean logit of the others)."""
        texts = check_texts(texts)
        check_explain_inputs(texts, k)
        return [top_k(text, c.spans, k) for text, c in zip(texts, self.contributions(texts, contexts))]

    def explanation_unit(self) -> str:
        return "part of the predicted label's logit minus the mean logit of the other labels"

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
