"""The scoring kernel: a batch of articles -> sentence rows and one article row each.

The only place that segments, predicts and aggregates. :func:`stance.score_article`, the local
``stance score`` engine and the Ray actor all call :meth:`Kernel.score`, so their rows are the
same by construction.

Each article is isolated: segmenting, predicting and summarising it happen under one guard, and
a failure becomes that article's error row while every other article is scored. Sentences of a
whole batch are predicted together (``batch_size`` at a time) for speed; when such a call
fails, the kernel predicts the batch's articles one by one so that only the failing article
gets the error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stance.aggregate import summarise, summarise_many
from stance.context import segment_with_context
from stance.labels import LABELS
from stance.scoring.readers import Article, one_line
from stance.segment import Sentence

SENTENCE_COLUMNS = ["source", "doc_id", "sentence_index", "start", "end", "text", "label",
                    *[f"p_{label}" for label in LABELS], "model", "model_sha256", "error"]
SIDES = ("pro-encryption", "pro-scanning")
ARTICLE_COLUMNS = ["source", "doc_id", "n_sentences", *[f"n_{label}" for label in LABELS],
                   *[f"share_{label}" for label in LABELS], *[f"mean_p_{label}" for label in LABELS],
                   "engagement", "engagement_expected", "engagement_ci_low", "engagement_ci_high",
                   "balance", "balance_ci_low", "balance_ci_high",
                   "stance_index", "stance_index_ci_low", "stance_index_ci_high", "article_label", "net_stance",
                   *[f"top_{side}" for side in SIDES], "model", "model_sha256", "warnings", "error"]
TOP_K = 3  # the most confident sentences of each side in an article row
# sentences per prediction call by default: the models batch internally (the transformer by
# length), and a TF-IDF call has a fixed cost that 256-sentence calls paid about 12 times per
# 3,000 sentences (1.8x the time of one call); the probabilities are the same at any size
PREDICT_BATCH = 2048
EXPLANATION = "explanation"  # sentence column with explanations on: [{span, weight, start, end}]


def meta_columns(keep_fields: Sequence[str]) -> list[str]:
    """Output names of kept input fields: a name that collides with an output column gets ``meta_``."""
    taken = set(SENTENCE_COLUMNS) | set(ARTICLE_COLUMNS)
    return [f"meta_{name}" if name in taken else name for name in keep_fields]


def top_sentences(sentences: list[dict[str, Any]], side: str, k: int = TOP_K) -> list[dict[str, Any]]:
    """The ``k`` sentence rows labelled ``side`` with the highest ``p_<side>``, as ``{"index", "text", "p"}``."""
    mine = sorted((s for s in sentences if s["label"] == side), key=lambda s: (-s[f"p_{side}"], s["sentence_index"]))
    return [{"index": s["sentence_index"], "text": s["text"], "p": s[f"p_{side}"]} for s in mine[:k]]


def _top_of_scored(texts: list[str], labels: list[int], proba: list[list[float]], side: str,
                   k: int = TOP_K) -> list[dict[str, Any]]:
    """:func:`top_sentences` from an article's sentence texts, label indices and probabilities
    (``proba`` as nested lists), without building its sentence rows first."""
    column = LABELS.index(side)
    mine = sorted((i for i, label in enumerate(labels) if label == column), key=lambda i: (-proba[i][column], i))
    return [{"index": i, "text": texts[i], "p": proba[i][column]} for i in mine[:k]]


@dataclass
class ScoredArticle:
    """One article after the kernel: its sentences and their ``(n, len(LABELS))`` probabilities,
    its summary (:func:`stance.aggregate.summarise`), or ``error`` (then no sentences)."""

    article: Article
    sentences: list[Sentence] = field(default_factory=list)
    proba: np.ndarray = field(default_factory=lambda: np.zeros((0, len(LABELS))))
    summary: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    explanations: list[list[Any]] | None = None


@dataclass
class Prepared:
    """A batch of articles after segmentation, as plain picklable data (one entry per article).

    ``errors[i]``: the reason article ``i`` cannot be scored, or ``None``; ``starts[i]``/``ends[i]``:
    its sentences' character offsets in ``articles[i].text``; ``contexts[i]``: one context per
    sentence (:func:`stance.context.sentence_contexts`). Error articles have empty lists.
    """

    articles: list[Article]
    errors: list[str | None] = field(default_factory=list)
    starts: list[list[int]] = field(default_factory=list)
    ends: list[list[int]] = field(default_factory=list)
    contexts: list[list[str]] = field(default_factory=list)

    def texts(self, i: int) -> list[str]:
        """The sentence texts of article ``i``."""
        text = self.articles[i].text
        return [text[a:b] for a, b in zip(self.starts[i], self.ends[i])]


@dataclass
class Predicted:
    """The model's output for a :class:`Prepared` batch: ``probas[i]`` of shape
    ``(n_sentences, len(LABELS))`` for each scorable article (else ``None``), and ``errors``
    (those of preparation plus ``prediction failed: ...``)."""

    probas: list[np.ndarray | None]
    errors: list[str | None]


class Kernel:
    """Scores batches of :class:`~stance.scoring.readers.Article` with one model.

    ``model``: anything with the model contract's ``predict_proba(texts, contexts)``;
    ``name`` and ``sha256`` label every row; ``batch_size``: sentences per prediction call (>= 1);
    ``keep_fields``: input metadata fields (``Article.meta``) copied to both row kinds, under the
    names of :func:`meta_columns`. ``explain``: with k > 0, every sentence row gets an
    ``explanation`` column: the model's ``attributions`` (up to k words or phrases that pushed the
    label, ``{span, weight, start, end}`` with offsets in the sentence's text, weight in the unit of
    the model's ``explanation_unit()``); occlusion costs about one prediction per word.
    """

    def __init__(self, model: Any, name: str, sha256: str, batch_size: int = PREDICT_BATCH,
                 keep_fields: Sequence[str] = (), explain: int = 0) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if explain < 0:
            raise ValueError(f"explain must be 0 (off) or a number of words, got {explain}")
        self.model, self.name, self.sha256, self.batch_size = model, name, sha256, batch_size
        self.explain = explain
        self.keep_fields = list(keep_fields)
        if len(set(self.keep_fields)) != len(self.keep_fields):
            raise ValueError(f"--keep-fields names a field twice: {', '.join(self.keep_fields)}")
        self.meta_names = meta_columns(self.keep_fields)
        self.sentence_columns = [*SENTENCE_COLUMNS, *([EXPLANATION] if explain else []), *self.meta_names]
        self.article_columns = [*ARTICLE_COLUMNS, *self.meta_names]

    def _meta(self, article: Article) -> dict[str, Any]:
        meta = article.meta or {}
        return {out: meta.get(name) for name, out in zip(self.keep_fields, self.meta_names)}

    # -- the stages, each guarded per article: prepare (no model), predict (the model), finish (no model)

    def _segment(self, article: Article) -> tuple[ScoredArticle, list[str]]:
        scored = ScoredArticle(article, error=article.error)
        if article.error is not None:
            return scored, []
        try:
            sentences, contexts = segment_with_context(article.text)
        except Exception as problem:  # one article's segmentation failure is its own error row
            scored.error = f"segmentation failed: {one_line(problem)}"
            return scored, []
        if not sentences:
            scored.error = "empty: no sentence"
            return scored, []
        scored.sentences = sentences
        return scored, contexts

    def prepare(self, articles: Sequence[Article]) -> Prepared:
        """Segment ``articles`` and build their sentences' contexts (no model needed).

        A failure is that article's ``error``; the result is plain data, cheap to send to
        another process.
        """
        prepared = Prepared(list(articles))
        for article in articles:
            scored, contexts = self._segment(article)
            prepared.errors.append(scored.error)
            prepared.starts.append([s.start for s in scored.sentences])
            prepared.ends.append([s.end for s in scored.sentences])
            prepared.contexts.append(contexts)
        return prepared

    def _predict(self, texts: list[str], contexts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, len(LABELS)))
        parts = [np.asarray(self.model.predict_proba(texts[i: i + self.batch_size], contexts[i: i + self.batch_size]),
                            dtype=float)
                 for i in range(0, len(texts), self.batch_size)]
        proba = np.concatenate(parts)
        if proba.shape != (len(texts), len(LABELS)) or not np.isfinite(proba).all():
            raise ValueError(f"the model returned probabilities of shape {proba.shape} or not finite")
        return proba

    def predict(self, prepared: Prepared) -> Predicted:
        """The model's probabilities for every live article of ``prepared`` (``None`` for the others).

        Sentences of the whole batch are predicted together; when that fails, article by article,
        so that only the failing article gets ``prediction failed`` in the returned errors.
        """
        errors = list(prepared.errors)
        probas: list[np.ndarray | None] = [None] * len(errors)
        live = [i for i, error in enumerate(errors) if error is None]
        texts = [prepared.texts(i) for i in live]
        try:
            proba = self._predict([t for part in texts for t in part],
                                  [c for i in live for c in prepared.contexts[i]])
        except Exception:  # narrow the failure to the article(s) that cause it
            for i, part in zip(live, texts):
                try:
                    probas[i] = self._predict(part, prepared.contexts[i])
                except Exception as problem:
                    errors[i] = f"prediction failed: {one_line(problem)}"
        else:
            offset = 0
            for i, part in zip(live, texts):
                probas[i] = proba[offset: offset + len(part)]
                offset += len(part)
        return Predicted(probas, errors)

    def finish(self, prepared: Prepared, predicted: Predicted) -> list[ScoredArticle]:
        """Summarise (and explain, which needs the model) every article; same order and length as
        ``prepared.articles``. Without ``explain`` this needs no model."""
        out = []
        for i, article in enumerate(prepared.articles):
            scored = ScoredArticle(article, error=predicted.errors[i])
            if scored.error is None:
                text = article.text
                scored.sentences = [Sentence(text[a:b], a, b) for a, b in zip(prepared.starts[i], prepared.ends[i])]
                scored.proba = predicted.probas[i]
            out.append(scored)
        live = [scored for scored in out if scored.error is None]
        try:  # the batch's summaries together (same numbers); on a failure, one by one to find whose
            for scored, summary in zip(live, summarise_many([scored.proba for scored in live])):
                scored.summary = summary
        except Exception:
            for scored in live:
                try:
                    scored.summary = summarise(scored.proba)
                except Exception as problem:
                    scored.error, scored.sentences = f"summary failed: {one_line(problem)}", []
        for i, scored in enumerate(out):
            if scored.error is None and self.explain:
                try:
                    scored.explanations = self.model.attributions([s.text for s in scored.sentences],
                                                                  prepared.contexts[i], self.explain)
                except Exception as problem:
                    scored.error, scored.sentences = f"explanation failed: {one_line(problem)}", []
        return out

    def score(self, articles: Sequence[Article]) -> list[ScoredArticle]:
        """Every article of ``articles``, scored or with ``error`` set; same order, same length."""
        prepared = self.prepare(articles)
        return self.finish(prepared, self.predict(prepared))

    # -- rows

    def sentence_rows(self, scored: ScoredArticle) -> list[dict[str, Any]]:
        """One row per sentence, keys in :data:`SENTENCE_COLUMNS` order (none for an error)."""
        if scored.error is not None:
            return []
        article = scored.article
        # whole-array argmax/tolist: per-element NumPy access cost as much as predicting
        labels = [LABELS[i] for i in scored.proba.argmax(1).tolist()] if len(scored.proba) else []
        meta = self._meta(article)
        rows = [
            {**dict(zip(SENTENCE_COLUMNS, (article.source, article.doc_id, i, s.start, s.end, s.text, label, *p,
                                           self.name, self.sha256, None))), **meta}
            for i, (s, label, p) in enumerate(zip(scored.sentences, labels, scored.proba.tolist()))
        ]
        if self.explain:
            for row, found in zip(rows, scored.explanations or [[] for _ in rows]):
                row[EXPLANATION] = [{"span": a.span, "weight": float(a.weight), "start": a.start, "end": a.end}
                                    for a in found]
        return rows

    def sentence_columns_of(self, batch: Sequence[ScoredArticle]) -> dict[str, list[Any]]:
        """The sentence rows of ``batch`` as columns, keys in ``sentence_columns`` order.

        Row ``r`` of the columns equals row ``r`` of :meth:`sentence_rows` over the batch's
        articles in order (error articles have none); built a column at a time, which costs a
        fraction of one dict per sentence.
        """
        columns: dict[str, list[Any]] = {name: [] for name in self.sentence_columns}
        for scored in batch:
            if scored.error is None and len(scored.sentences):
                self._extend_columns(columns, scored)
        return columns

    def _extend_columns(self, columns: dict[str, list[Any]], scored: ScoredArticle) -> None:
        article, n = scored.article, len(scored.sentences)
        columns["source"] += [article.source] * n
        columns["doc_id"] += [article.doc_id] * n
        columns["sentence_index"] += range(n)
        columns["start"] += [s.start for s in scored.sentences]
        columns["end"] += [s.end for s in scored.sentences]
        columns["text"] += [s.text for s in scored.sentences]
        columns["label"] += [LABELS[i] for i in scored.proba.argmax(1).tolist()]
        for j, label in enumerate(LABELS):
            columns[f"p_{label}"] += scored.proba[:, j].tolist()
        columns["model"] += [self.name] * n
        columns["model_sha256"] += [self.sha256] * n
        columns["error"] += [None] * n
        if self.explain:
            found = list(scored.explanations or [[] for _ in range(n)])[:n]
            columns[EXPLANATION] += [[{"span": a.span, "weight": float(a.weight), "start": a.start, "end": a.end}
                                      for a in item] for item in found]
            columns[EXPLANATION] += [None] * (n - len(found))  # as sentence_rows: a row without one is empty
        for name, value in self._meta(article).items():
            columns[name] += [value] * n

    def article_row(self, scored: ScoredArticle, sentence_rows: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """The article's row, keys in ``article_columns`` order; counts 0 and the rest empty for an error.

        ``top_<side>``: the :data:`TOP_K` most confident sentences of each side (a list, empty
        when none); from ``sentence_rows`` when the caller has them, else from ``scored`` directly.
        """
        article = scored.article
        row: dict[str, Any] = dict.fromkeys(self.article_columns)
        row.update(source=article.source, doc_id=article.doc_id, n_sentences=0, **{f"n_{label}": 0 for label in LABELS})
        if scored.error is None:
            row.update(scored.summary)
            if sentence_rows is None:
                texts = [s.text for s in scored.sentences]
                labels = scored.proba.argmax(1).tolist() if len(scored.proba) else []
                proba = scored.proba.tolist()
                row.update({f"top_{side}": _top_of_scored(texts, labels, proba, side) for side in SIDES})
            else:
                row.update({f"top_{side}": top_sentences(sentence_rows, side) for side in SIDES})
        row.update(model=self.name, model_sha256=self.sha256, warnings=article.warnings, error=scored.error,
                   **self._meta(article))
        return row

    def batch_rows(self, batch: Sequence[ScoredArticle]) -> tuple[dict[str, list[Any]], list[dict[str, Any]]]:
        """A scored batch's sentence rows as columns (:meth:`sentence_columns_of`) and its article rows."""
        return self.sentence_columns_of(batch), [self.article_row(scored) for scored in batch]

    def rows(self, articles: Sequence[Article]) -> list[tuple[list[dict[str, Any]], dict[str, Any]]]:
        """For every article, in order: its sentence rows and its article row."""
        out = []
        for scored in self.score(articles):
            sentences = self.sentence_rows(scored)
            out.append((sentences, self.article_row(scored, sentences)))
        return out
