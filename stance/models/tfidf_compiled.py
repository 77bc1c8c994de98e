"""The compiled TF-IDF inference engine: a fitted word + char TF-IDF and linear classifier as plain arrays.

:class:`CompiledTfidf` is made from a fitted scikit-learn pipeline (:meth:`CompiledTfidf.from_pipeline`)
and predicts with NumPy and scipy.sparse only: the same numbers as scikit-learn's pipeline (to
~1e-15), about 10x faster, and loading it imports neither scikit-learn nor torch. The model family
around it (fitting, contexts, the saved model's config) is :mod:`stance.models.tfidf`.

Saved without pickle: ``tfidf.npz`` (float/int arrays, loaded with ``allow_pickle=False``) and
``vocabulary.json`` (the terms of each vectorizer in column order, and its analyzer settings).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np

from stance.labels import LABELS
from stance.models.base import expand_proba

ARRAYS_FILE = "tfidf.npz"
VOCAB_FILE = "vocabulary.json"
FORMAT_VERSION = 1
# distinct whitespace-separated words whose analysis (char n-gram columns, token ids) is kept
# between calls; emptied at this size, so scoring an endless archive cannot grow memory
_WORD_CACHE_LIMIT = 200_000
# scikit-learn's default token pattern: its tokens never contain whitespace, which the per-word
# analysis relies on (see CompiledTfidf._compile_word), so it is the only one compiled
TOKEN_PATTERN = r"(?u)\b\w\w+\b"


def softmax(scores: np.ndarray) -> np.ndarray:
    """Row-wise softmax, shifted by the row maximum as scikit-learn does."""
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def char_wb_ngrams(word: str, low: int, high: int) -> list[str]:
    """Char n-grams of one word padded with a space each side (scikit-learn's ``char_wb``).

    A padded word no longer than ``n`` yields itself once, and no longer n-grams are taken.
    """
    padded = " " + word + " "
    size = len(padded)
    grams: list[str] = []
    for n in range(low, high + 1):
        if n >= size:
            grams.append(padded)
            break
        grams += [padded[i : i + n] for i in range(size - n + 1)]
    return grams


class CompiledTfidf:
    """A fitted word + char_wb TF-IDF FeatureUnion and linear classifier, as plain arrays.

    ``word_terms``/``char_terms`` list each vectorizer's terms in column order; ``coef`` has one
    row per class (one row only for two classes, as scikit-learn stores it) over the word columns
    followed by the char columns; ``classes`` are the label ids present in training.
    """

    def __init__(self, kind: str, settings: dict[str, Any], word_terms: list[str], char_terms: list[str],
                 word_idf: np.ndarray, char_idf: np.ndarray, coef: np.ndarray, intercept: np.ndarray,
                 classes: np.ndarray) -> None:
        if kind not in {"logreg", "svm"}:
            raise ValueError(f"unknown classifier kind {kind!r}")
        self.kind = kind
        self.settings = settings
        self.word_terms, self.char_terms = word_terms, char_terms
        self.word_idf = np.ascontiguousarray(word_idf, dtype=np.float64)
        self.char_idf = np.ascontiguousarray(char_idf, dtype=np.float64)
        self.coef = np.ascontiguousarray(coef, dtype=np.float64)
        self.intercept = np.ascontiguousarray(intercept, dtype=np.float64)
        self.classes = np.asarray(classes, dtype=np.int64)
        n_word, n_char = len(word_terms), len(char_terms)
        if self.coef.shape[1] != n_word + n_char or len(self.word_idf) != n_word or len(self.char_idf) != n_char:
            raise ValueError("vocabulary, idf and coefficient sizes disagree")
        if settings["token_pattern"] != TOKEN_PATTERN:
            raise NotImplementedError(f"token pattern {settings['token_pattern']!r} is not compiled")
        self._char_vocab = dict(zip(char_terms, range(n_char)))
        # (features, classes) blocks with idf folded in: (tf * idf) @ coef == tf @ (idf * coef),
        # so the per-entry idf gather is done once here instead of on every prediction
        self._word_coef_idf = self.coef[:, :n_word].T * self.word_idf[:, None]
        self._char_coef_idf = self.coef[:, n_word:].T * self.char_idf[:, None]
        self._word_idf_sq, self._char_idf_sq = self.word_idf**2, self.char_idf**2
        self._token = re.compile(settings["token_pattern"])
        self._index_word_ngrams()
        self._word_cache: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def _index_word_ngrams(self) -> None:
        """Token ids for every token in the word vocabulary, and each n-gram as ids.

        A unigram's column is looked up by token id and a bigram's by the key ``a * K + b`` in
        a sorted array, so a batch's n-grams are found with NumPy instead of building and
        hashing a string per bigram.
        """
        low, high = self.settings["word_ngram_range"]
        if not 1 <= low <= high <= 2:
            raise NotImplementedError(f"word n-gram range {low}-{high} is not compiled (1-2 grams at most)")
        split = [term.split(" ") for term in self.word_terms]
        self._token_ids = {}
        for parts in split:
            for token in parts:
                self._token_ids.setdefault(token, len(self._token_ids))
        k = len(self._token_ids)
        # one slot more than there are tokens: id -1 (a token outside the vocabulary) lands there
        self._unigram_col = np.full(k + 1, -1, dtype=np.int64)
        keys, columns = [], []
        for column, parts in enumerate(split):
            ids = [self._token_ids[t] for t in parts]
            if len(ids) == 1:
                self._unigram_col[ids[0]] = column
            elif len(ids) != 2:
                raise ValueError(f"word term {self.word_terms[column]!r} is not a 1- or 2-gram")
            else:
                keys.append(ids[0] * k + ids[1])
                columns.append(column)
        order = np.argsort(np.array(keys, dtype=np.int64), kind="stable")
        self._bigram_keys = np.array(keys, dtype=np.int64)[order]
        self._bigram_col = np.array(columns, dtype=np.int64)[order]

    # ------------------------------------------------------------ from scikit-learn

    @classmethod
    def from_pipeline(cls, pipeline: Any, kind: str, columns: slice | None = None) -> CompiledTfidf:
        """Compile a fitted ``Pipeline([("features", FeatureUnion(word, char)), ("classifier", ...)])``.

        ``columns``: the classifier's coefficient columns that belong to these features (when it
        was fitted on more blocks than the pipeline's own); all of them by default.

        Raises ``NotImplementedError`` for vectorizer settings the compiled analyzers do not
        reproduce, rather than predicting something different from scikit-learn.
        """
        union = pipeline.named_steps["features"]
        if union.transformer_weights:
            raise NotImplementedError("FeatureUnion transformer_weights are not compiled")
        vectorizers = dict(union.transformer_list)
        word, char = vectorizers["word"], vectorizers["char"]
        for name, vec, analyzer in (("word", word, "word"), ("char", char, "char_wb")):
            unsupported = {
                "analyzer": vec.analyzer != analyzer, "preprocessor": vec.preprocessor is not None,
                "tokenizer": vec.tokenizer is not None, "strip_accents": vec.strip_accents is not None,
                "stop_words": vec.stop_words is not None, "binary": vec.binary, "norm": vec.norm != "l2",
                "use_idf": not vec.use_idf, "sublinear_tf": not vec.sublinear_tf, "input": vec.input != "content",
                "lowercase": not vec.lowercase, "dtype": np.dtype(vec.dtype) != np.float64,
            }
            bad = [key for key, is_bad in unsupported.items() if is_bad]
            if bad:
                raise NotImplementedError(f"{name} vectorizer settings not compiled: {bad}")
        head = pipeline.named_steps["classifier"]
        settings = {
            "token_pattern": word.token_pattern,
            "word_ngram_range": list(word.ngram_range),
            "char_ngram_range": list(char.ngram_range),
        }
        coef = head.coef_ if columns is None else head.coef_[:, columns]
        return cls(kind, settings, vocabulary_terms(word.vocabulary_), vocabulary_terms(char.vocabulary_),
                   word.idf_, char.idf_, coef, np.atleast_1d(head.intercept_), head.classes_)

    # ------------------------------------------------------------ features

    def _compile_word(self, word: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One lower-cased whitespace-free word: its in-vocabulary char n-gram columns, how often
        each occurs, and the ids of its tokens (-1 for a token in no word n-gram); cached.

        Tokens never span whitespace (``\\w`` excludes it, and ``\\b`` at a word's edge is the
        same inside the text as at the ends of the word), so a text's tokens are its words' tokens
        in order, and both analyzers need only work once per distinct word.
        """
        low, high = self.settings["char_ngram_range"]
        vocab = self._char_vocab
        counts = Counter(vocab[g] for g in char_wb_ngrams(word, low, high) if g in vocab)
        tokens = self._token.findall(word)
        entry = (np.fromiter(counts.keys(), np.int64, len(counts)), np.fromiter(counts.values(), np.float64, len(counts)),
                 np.fromiter(map(self._token_ids.get, tokens, repeat(-1)), np.int64, len(tokens)))
        if len(self._word_cache) >= _WORD_CACHE_LIMIT:
            self._word_cache.clear()
        self._word_cache[word] = entry
        return entry

    def counts(self, texts: list[str]) -> tuple[Any, Any]:
        """Raw word and char n-gram counts (scipy CSR, documents x columns) for ``texts``.

        Each text is lower-cased and split on whitespace (``str.split`` and the ``\\s`` sklearn
        collapses first match exactly the same characters); each distinct word of the batch is
        analysed once (or taken from the cache), and the per-document counts are then assembled
        with NumPy and sparse products in C rather than a Python loop over every n-gram.
        """
        import scipy.sparse as sp

        n = len(texts)
        words: list[str] = []
        word_counts: list[int] = []
        for text in texts:
            split = text.lower().split()
            words += split
            word_counts.append(len(split))
        distinct = dict.fromkeys(words)
        position = dict(zip(distinct, range(len(distinct))))
        word_ids = np.fromiter(map(position.__getitem__, words), np.int64, len(words))
        cached = self._word_cache.get
        entries = [cached(w) or self._compile_word(w) for w in distinct]
        # documents x distinct words; a repeated word is a duplicate entry, which the products sum
        docs = sp.csr_matrix((np.ones(len(words)), word_ids, np.concatenate([[0], np.cumsum(word_counts)])),
                             shape=(n, len(distinct)))
        return self._word_counts(entries, word_ids, np.repeat(np.arange(n), word_counts), n), self._char_counts(
            entries, docs, sp)

    def _word_counts(self, entries: list[tuple[np.ndarray, ...]], word_ids: np.ndarray, word_doc: np.ndarray,
                     n: int) -> Any:
        """Unigram and bigram counts per document: the documents' token ids, in order, from their words."""
        import scipy.sparse as sp

        lengths = np.fromiter((len(e[2]) for e in entries), np.int64, len(entries))
        flat = np.concatenate([e[2] for e in entries]) if entries else np.zeros(0, np.int64)
        starts = np.cumsum(lengths) - lengths
        # ragged gather: every occurrence of a word contributes its tokens' ids, in text order
        taken = lengths[word_ids]
        before = np.cumsum(taken) - taken
        ids = flat[np.repeat(starts[word_ids] - before, taken) + np.arange(int(taken.sum()))]
        doc = np.repeat(word_doc, taken)
        low, high = self.settings["word_ngram_range"]
        rows, columns = [], []
        if low == 1:
            unigram = self._unigram_col[ids]
            rows.append(doc[unigram >= 0])
            columns.append(unigram[unigram >= 0])
        if high == 2 and len(ids) > 1 and len(self._bigram_keys):
            first, second = ids[:-1], ids[1:]
            # a bigram never spans two documents, and one with an unknown token is in no vocabulary
            valid = (doc[:-1] == doc[1:]) & (first >= 0) & (second >= 0)
            keys = first[valid] * (len(self._unigram_col) - 1) + second[valid]
            where = np.minimum(np.searchsorted(self._bigram_keys, keys), len(self._bigram_keys) - 1)
            hit = self._bigram_keys[where] == keys
            rows.append(doc[:-1][valid][hit])
            columns.append(self._bigram_col[where[hit]])
        row = np.concatenate(rows) if rows else np.zeros(0, np.int64)
        column = np.concatenate(columns) if columns else np.zeros(0, np.int64)
        # COO -> CSR sums the duplicates: the counts
        return sp.csr_matrix((np.ones(len(row)), (row, column)), shape=(n, len(self.word_terms)))

    def _char_counts(self, entries: list[tuple[np.ndarray, ...]], docs: Any, sp: Any) -> Any:
        """char_wb n-gram counts per document: (documents x distinct words) @ (distinct words x char columns)."""
        per_word = sp.csr_matrix(
            (np.concatenate([e[1] for e in entries]) if entries else np.zeros(0),
             np.concatenate([e[0] for e in entries]) if entries else np.zeros(0, np.int64),
             np.concatenate([[0], np.cumsum([len(e[0]) for e in entries], dtype=np.int64)])),
            shape=(len(entries), len(self.char_terms)))
        return sp.csr_matrix(docs @ per_word)

    def features(self, texts: list[str]) -> tuple[Any, Any]:
        """Word and char TF-IDF matrices (CSR, rows l2-normalised) as the fitted vectorizers give them."""
        out = []
        for counts, idf in zip(self.counts(texts), (self.word_idf, self.char_idf)):
            counts.data = (1.0 + np.log(counts.data)) * idf[counts.indices]
            rows = np.repeat(np.arange(counts.shape[0]), np.diff(counts.indptr))
            norms = np.sqrt(np.bincount(rows, weights=counts.data**2, minlength=counts.shape[0]))
            counts.data /= np.where(norms == 0.0, 1.0, norms)[rows]
            out.append(counts)
        return out[0], out[1]

    def occurrences(self, text: str) -> dict[int, list[tuple[int, int]]]:
        """Where each in-vocabulary n-gram of ``text`` occurs: column -> ``(start, end)`` offsets in ``text``.

        Columns are coefficient columns (word terms first, then char terms, as :attr:`coef`). A
        word unigram's offsets are its token's, a bigram's run from its first token's start to its
        second's end; a char_wb n-gram's are the characters of its whitespace-separated word that
        it covers (the padding spaces are no characters of the text). Each column lists exactly as
        many occurrences as :meth:`counts` counts for it.
        """
        lowered = text.lower()
        if len(lowered) == len(text):
            origin = range(len(text) + 1)
        else:  # a character whose lower case is longer (e.g. "İ"): map each piece back to its source
            lowered = "".join(c.lower() for c in text)
            origin = [i for i, c in enumerate(text) for _ in c.lower()] + [len(text)]
        if not hasattr(self, "_word_vocab"):
            self._word_vocab = dict(zip(self.word_terms, range(len(self.word_terms))))
        found: dict[int, list[tuple[int, int]]] = {}
        # an end offset maps back through the last character it covers, so it never comes before the start
        tokens = [(m.group(), origin[m.start()], origin[m.end() - 1] + 1) for m in self._token.finditer(lowered)]
        low, high = self.settings["word_ngram_range"]
        for n in range(low, high + 1):
            for i in range(len(tokens) - n + 1):
                column = self._word_vocab.get(" ".join(t[0] for t in tokens[i : i + n]))
                if column is not None:
                    found.setdefault(column, []).append((tokens[i][1], tokens[i + n - 1][2]))
        offset = len(self.word_terms)
        low, high = self.settings["char_ngram_range"]
        for chunk in re.finditer(r"\S+", lowered):
            padded, base = " " + chunk.group() + " ", chunk.start()
            size = len(padded)
            for n in range(low, high + 1):
                # the same n-grams, in the same cases, as char_wb_ngrams
                starts = [0] if n >= size else range(size - n + 1)
                for i in starts:
                    gram = padded if n >= size else padded[i : i + n]
                    column = self._char_vocab.get(gram)
                    if column is not None:
                        first = base + max(i - 1, 0)
                        last = base + min(i + len(gram) - 1, size - 2)
                        found.setdefault(offset + column, []).append((origin[first], origin[last - 1] + 1))
                if n >= size:
                    break
        return found

    # ------------------------------------------------------------ prediction

    def decision_function(self, texts: list[str]) -> np.ndarray:
        """Classifier scores, ``(n, classes)`` or ``(n,)`` for two classes, as scikit-learn gives them."""
        x_word, x_char = self.counts(texts)
        scores = (_normalised_scores(x_word, self._word_coef_idf, self._word_idf_sq)
                  + _normalised_scores(x_char, self._char_coef_idf, self._char_idf_sq) + self.intercept)
        return scores[:, 0] if self.coef.shape[0] == 1 else scores

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """``(n, 3)`` probabilities in ``LABELS`` order (softmax of SVM margins for ``"svm"``)."""
        if not texts:
            return np.zeros((0, len(LABELS)))
        if len(self.classes) == 1:
            return expand_proba(np.ones((len(texts), 1)), [int(self.classes[0])])
        return self.proba_from_scores(self.decision_function(texts))

    def proba_from_scores(self, scores: np.ndarray) -> np.ndarray:
        """Probabilities ``(n, 3)`` from classifier scores as :meth:`decision_function` gives them."""
        present = [int(c) for c in self.classes]
        if scores.ndim == 1:  # two classes: one score, the second class against the first
            if self.kind == "logreg":
                positive = 1.0 / (1.0 + np.exp(-scores))
                return expand_proba(np.stack([1.0 - positive, positive], axis=1), present)
            scores = np.stack([-scores, scores], axis=1)
        return expand_proba(softmax(scores), present)

    def feature_names(self) -> list[str]:
        """Column names as scikit-learn's FeatureUnion gives them (``word__...``, ``char__...``)."""
        return [f"word__{t}" for t in self.word_terms] + [f"char__{t}" for t in self.char_terms]

    # ------------------------------------------------------------ files

    def save(self, folder: Path) -> None:
        """Write ``tfidf.npz`` (numeric arrays) and ``vocabulary.json`` (terms and settings)."""
        np.savez(folder / ARRAYS_FILE, word_idf=self.word_idf, char_idf=self.char_idf, coef=self.coef,
                 intercept=self.intercept, classes=self.classes)
        # ensure_ascii keeps any lone surrogate in a term representable in the file
        payload = {"format": FORMAT_VERSION, "classifier": self.kind, **self.settings,
                   "word": self.word_terms, "char": self.char_terms}
        (folder / VOCAB_FILE).write_text(json.dumps(payload) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> CompiledTfidf:
        """Read what :meth:`save` wrote; refuses pickled arrays and unknown format versions."""
        vocab = json.loads((folder / VOCAB_FILE).read_text(encoding="utf-8"))
        if vocab.get("format") != FORMAT_VERSION:
            raise ValueError(f"{folder / VOCAB_FILE} has format {vocab.get('format')!r}, expected {FORMAT_VERSION}")
        settings = {key: vocab[key] for key in ("token_pattern", "word_ngram_range", "char_ngram_range")}
        with np.load(folder / ARRAYS_FILE, allow_pickle=False) as arrays:
            return cls(vocab["classifier"], settings, vocab["word"], vocab["char"], arrays["word_idf"],
                       arrays["char_idf"], arrays["coef"], arrays["intercept"], arrays["classes"])


def vocabulary_terms(vocabulary: dict[str, int]) -> list[str]:
    """A vectorizer's ``vocabulary_`` (term -> column) as the list of terms in column order."""
    terms = [""] * len(vocabulary)
    for term, column in vocabulary.items():
        terms[column] = term
    return terms


def _normalised_scores(counts: Any, coef_idf: np.ndarray, idf_sq: np.ndarray) -> np.ndarray:
    """``l2normalise((1 + log tf) * idf) @ coef`` from raw counts, without building the tf-idf matrix.

    Scaling a row before or after the dot product gives the same scores, so each row's score is
    ``(tf @ (idf * coef)) / sqrt(tf**2 @ idf**2)``; a row without features stays 0, as in sklearn.
    """
    data = counts.data
    np.log(data, out=data)
    data += 1.0  # sublinear tf
    raw = np.asarray(counts @ coef_idf)
    counts.data = data * data
    norms = np.sqrt(np.asarray(counts @ idf_sq))
    norms[norms == 0.0] = 1.0
    return raw / norms[:, None]
