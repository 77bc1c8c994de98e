"""Sentence explanations shared by every model: words with character offsets, occlusion, top-k.

An explanation of one text is a list of :class:`Attribution` (a word or phrase of the text with
its offsets and a weight; positive pushes towards the label the model predicts for the text).
:meth:`stance.models.base.StanceModel.attributions` returns them; ``explain`` drops the offsets.

Two methods produce the weights:

* **Leave-one-word-out occlusion** (:func:`occlusion`), the default of every model: each word of
  a text is deleted in turn, all variants are predicted in batches, and a word's weight is how
  much its deletion lowers the probability of the label predicted for the intact text (unit:
  probability, in [-1, 1]). This is the "occlusion"/"leave-one-out" attribution of Li, Monroe and
  Jurafsky, "Understanding Neural Networks through Representation Erasure" (2016), with deletion
  rather than a mask token, so it works the same for any model that reads strings.
* **Exact linear contributions** for the TF-IDF model (:mod:`stance.models.tfidf`), in logit units.

Deletion (:func:`delete_spans`) is also what the faithfulness check of ERASER (DeYoung et al.,
"ERASER: A Benchmark to Evaluate Rationalized NLP Models", ACL 2020) deletes, so the two agree.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

# a word: a run of letters/digits, joined across inner hyphens and apostrophes ("end-to-end",
# "don't", "Apple’s"); punctuation and whitespace are never part of a word
WORD_PATTERN = re.compile(r"\w+(?:[-'\u2019]\w+)*")
# occlusion predicts one variant per word: words past this many are left unexplained (weight 0)
MAX_WORDS = 64
# variants predicted per call during occlusion: bounds the memory of one explain call
BATCH_VARIANTS = 2048

ProbaFn = Callable[[list[str], list[str]], np.ndarray]


class Attribution(NamedTuple):
    """One explained span: ``text[start:end] == span``; ``weight`` in the explaining method's unit."""

    span: str
    weight: float
    start: int
    end: int


def word_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` character offsets of the words of ``text`` (:data:`WORD_PATTERN`), in order."""
    return [match.span() for match in WORD_PATTERN.finditer(text)]


def delete_spans(text: str, spans: Sequence[tuple[int, int]]) -> str:
    """``text`` without the characters of ``spans`` and the whitespace run that follows each one.

    A span at the very end takes the whitespace before it instead, so no dangling space is left.
    Overlapping or repeated spans are merged first. Offsets are character offsets of ``text``.
    """
    cuts: list[list[int]] = []
    for start, end in sorted(spans):
        if not 0 <= start <= end <= len(text):
            raise ValueError(f"span {(start, end)} outside a text of {len(text)} characters")
        if cuts and start <= cuts[-1][1]:
            cuts[-1][1] = max(cuts[-1][1], end)
        else:
            cuts.append([start, end])
    pieces, position = [], 0
    for start, end in cuts:
        stop = end
        while stop < len(text) and text[stop].isspace():
            stop += 1
        if stop == len(text):
            while start > position and text[start - 1].isspace():
                start -= 1
        pieces.append(text[position:start])
        position = stop
    pieces.append(text[position:])
    return "".join(pieces)


def check_explain_inputs(texts: list[str], k: int) -> None:
    """Raise ``ValueError`` for ``k`` below 1 or a text that is empty or only whitespace
    (``TypeError`` for a non-int ``k``); texts are already checked to be ``str``."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be an int, got {type(k).__name__}")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    for position, text in enumerate(texts):
        if not text.strip():
            raise ValueError(f"text at position {position} is empty: there is nothing to explain")


def top_k(text: str, weighted: Sequence[tuple[int, int, float]], k: int) -> list[Attribution]:
    """The at most ``k`` spans with the largest positive weight, largest first.

    ``weighted``: ``(start, end, weight)`` per span of ``text``. Ties keep text order (the sort is
    stable on the span's start), so the result is deterministic; spans with weight <= 0 did not
    push towards the predicted label and are never returned.
    """
    ordered = sorted((w for w in weighted if w[2] > 0.0), key=lambda w: (-w[2], w[0], w[1]))
    return [Attribution(text[s:e], float(w), s, e) for s, e, w in ordered[:k]]


def occlusion(proba: ProbaFn, texts: list[str], contexts: list[str], k: int,
              max_words: int = MAX_WORDS, variants_proba: ProbaFn | None = None) -> list[list[Attribution]]:
    """Leave-one-word-out attributions of ``texts`` under the probability function ``proba``.

    ``proba(texts, contexts)`` returns ``(n, 3)`` probabilities (a model's ``predict_proba``);
    ``variants_proba`` the same for the one-off variants (e.g. one that skips a per-text cache;
    ``proba`` when ``None``). The intact texts are predicted once; then each of the first
    ``max_words`` words of each text is deleted (:func:`delete_spans`) and all variants are
    predicted in batches of :data:`BATCH_VARIANTS`, each with its text's context. A word's weight
    is ``p(label | text) - p(label | text without the word)`` for the label predicted for the
    intact text (probability units, in [-1, 1]); the ``k`` largest positive ones are returned.
    Cost: one prediction per word, at most ``len(texts) * (max_words + 1)`` in all.
    """
    if not texts:
        return []
    base = proba(texts, contexts)
    predicted = np.argmax(base, axis=1)
    spans = [word_spans(text)[:max_words] for text in texts]
    owners = np.repeat(np.arange(len(texts)), [len(s) for s in spans])
    variants = [delete_spans(text, [span]) for text, ss in zip(texts, spans) for span in ss]
    variants_proba = variants_proba or proba
    dropped = np.zeros(len(variants))
    for start in range(0, len(variants), BATCH_VARIANTS):
        stop = min(start + BATCH_VARIANTS, len(variants))
        rows = owners[start:stop]
        p = variants_proba(variants[start:stop], [contexts[i] for i in rows])
        dropped[start:stop] = base[rows, predicted[rows]] - p[np.arange(stop - start), predicted[rows]]
    out, position = [], 0
    for text, ss in zip(texts, spans):
        weights = dropped[position : position + len(ss)]
        position += len(ss)
        out.append(top_k(text, [(s, e, float(w)) for (s, e), w in zip(ss, weights)], k))
    return out


def covered_words(text: str, attributions: Sequence[Attribution]) -> list[tuple[int, int]]:
    """The words of ``text`` (:func:`word_spans`) that lie inside any of the attributed spans."""
    return [(s, e) for s, e in word_spans(text) if any(a.start <= s and e <= a.end for a in attributions)]
