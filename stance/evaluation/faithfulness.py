"""Do explanations mean something? ERASER's comprehensiveness, against deleting random words.

Comprehensiveness (DeYoung et al., "ERASER: A Benchmark to Evaluate Rationalized NLP Models",
ACL 2020, section 4) is ``p(label | text) - p(label | text without its rationale)`` for the label
the model predicts for the intact text: the larger, the more the explained words carried the
decision. Here the rationale is the words covered by a model's ``k`` explained spans
(:meth:`~stance.models.base.StanceModel.attributions`), and the control deletes as many words
chosen uniformly at random (seeded) from the same text: a faithful explanation beats the control.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from stance.models.base import check_contexts, check_texts
from stance.models.explain import Attribution, covered_words, delete_spans, word_spans


class Comprehensiveness(NamedTuple):
    """Per explained sentence (``index`` into the input), in probability units.

    ``top``: drop of the predicted label's probability when the explained words are deleted;
    ``random``: the same when as many random words are deleted; ``deleted``: how many words each.
    Sentences with no explained word (no word pushed the label) are left out (``skipped``).
    """

    index: np.ndarray
    top: np.ndarray
    random: np.ndarray
    deleted: np.ndarray
    skipped: int


def comprehensiveness(model: Any, texts: Sequence[str], contexts: Sequence[str] | None = None, k: int = 5,
                      seed: int = 0, explained: Sequence[Sequence[Attribution]] | None = None
                      ) -> Comprehensiveness:
    """Comprehensiveness of ``model``'s top-``k`` explanations and of random deletions on ``texts``.

    ``model``: anything with the model contract (``predict_proba`` and ``attributions``). The
    random words of each sentence come from ``numpy.random.default_rng(seed)`` in input order, so
    the same call gives the same numbers. Three batched predictions: intact, explained words
    deleted, random words deleted (each with the sentence's context). Raises what
    ``attributions`` raises (e.g. ``ValueError`` for an empty text). ``explained``: attributions
    already computed for ``texts`` (e.g. once with a larger ``k``); only their first ``k`` are used.
    """
    texts = check_texts(texts)
    contexts = check_contexts(contexts, len(texts))
    if explained is None:
        explained = model.attributions(texts, contexts, k)
    elif len(explained) != len(texts):
        raise ValueError(f"{len(explained)} explanations for {len(texts)} texts")
    explained = [list(spans)[:k] for spans in explained]
    rng = np.random.default_rng(seed)
    keep, without_top, without_random, deleted = [], [], [], []
    for i, (text, spans) in enumerate(zip(texts, explained)):
        chosen = covered_words(text, spans)
        if not chosen:
            continue
        words = word_spans(text)
        picks = rng.choice(len(words), size=len(chosen), replace=False)
        keep.append(i)
        without_top.append(delete_spans(text, chosen))
        without_random.append(delete_spans(text, [words[j] for j in picks]))
        deleted.append(len(chosen))
    index = np.asarray(keep, dtype=np.int64)
    if not keep:
        empty = np.zeros(0)
        return Comprehensiveness(index, empty, empty, np.zeros(0, np.int64), len(texts))
    kept_texts, kept_contexts = [texts[i] for i in keep], [contexts[i] for i in keep]
    intact = model.predict_proba(kept_texts, kept_contexts)
    label = np.argmax(intact, axis=1)
    rows = np.arange(len(keep))
    base = intact[rows, label]
    top = base - model.predict_proba(without_top, kept_contexts)[rows, label]
    random = base - model.predict_proba(without_random, kept_contexts)[rows, label]
    return Comprehensiveness(index, top, random, np.asarray(deleted, dtype=np.int64), len(texts) - len(keep))


def mean_ci(values: np.ndarray, n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``values`` and its 95 % percentile bootstrap interval (resampling the values, seeded)."""
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        raise ValueError("no values to average")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(n_boot, len(values)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(values.mean()), float(low), float(high)
