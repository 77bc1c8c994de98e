"""Near-duplicate detection between sentences.

Two sentences are near duplicates when any of these holds:

* their normalised text (NFKC, lower case, punctuation dropped) is identical;
* the cosine similarity of their character 3-5-gram TF-IDF vectors is at least
  :data:`COSINE_THRESHOLD` (0.6). On the seeds, every pair of copies of the same quotation
  scores >= 0.69 and the most similar pair of different sentences scores 0.54;
* at least :data:`CONTAINMENT_THRESHOLD` (0.35) of the shorter sentence's word trigrams occur
  in the longer one -- this catches a quotation that one article prints whole and another
  splits or embeds in a longer sentence ("Ms Phillips replied: ... raises an extremely
  serious issue and I can assure him ..." vs "My hon. Friend raises an extremely serious
  issue."), and the police figures that 001 and 002 both reword from one charity statement
  (0.37). On the seeds every pair this rule adds shares a quotation or a reworded claim.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

import numpy as np

COSINE_THRESHOLD = 0.6
CONTAINMENT_THRESHOLD = 0.35
_MIN_TRIGRAMS = 3


def normalise(text: str) -> str:
    """Lower-case, NFKC-normalised ``text`` with punctuation removed and spaces collapsed."""
    text = unicodedata.normalize("NFKC", text).lower()
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())


def _trigrams(text: str) -> frozenset[tuple[str, ...]]:
    words = normalise(text).split()
    return frozenset(zip(words, words[1:], words[2:]))


def char_cosine(texts_a: Sequence[str], texts_b: Sequence[str]) -> np.ndarray:
    """Matrix of character 3-5-gram TF-IDF cosine similarities, ``len(a) x len(b)``."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectoriser = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5))
    vectoriser.fit([normalise(t) for t in [*texts_a, *texts_b]])
    a = vectoriser.transform([normalise(t) for t in texts_a])
    b = vectoriser.transform([normalise(t) for t in texts_b])
    return (a @ b.T).toarray()


def containment(text_a: str, text_b: str) -> float:
    """Share of the shorter text's word trigrams found in the other (0 if it has < 3)."""
    grams_a, grams_b = _trigrams(text_a), _trigrams(text_b)
    shorter, longer = sorted((grams_a, grams_b), key=len)
    if len(shorter) < _MIN_TRIGRAMS:
        return 0.0
    return len(shorter & longer) / len(shorter)


def near_duplicate_pairs(
    texts_a: Sequence[str], texts_b: Sequence[str] | None = None
) -> list[tuple[int, int, str]]:
    """Pairs ``(i, j, reason)`` of near duplicates between ``texts_a`` and ``texts_b``.

    With ``texts_b`` omitted, pairs within ``texts_a`` with ``i < j``. ``reason`` is
    ``"exact"``, ``"cosine"`` or ``"containment"``.
    """
    same = texts_b is None
    other = texts_a if same else texts_b
    if not texts_a or not other:
        return []
    cosine = char_cosine(texts_a, other)
    norm_a = [normalise(t) for t in texts_a]
    norm_b = norm_a if same else [normalise(t) for t in other]
    pairs: list[tuple[int, int, str]] = []
    for i in range(len(texts_a)):
        for j in range(i + 1 if same else 0, len(other)):
            if norm_a[i] == norm_b[j]:
                pairs.append((i, j, "exact"))
            elif cosine[i, j] >= COSINE_THRESHOLD:
                pairs.append((i, j, "cosine"))
            elif containment(texts_a[i], other[j]) >= CONTAINMENT_THRESHOLD:
                pairs.append((i, j, "containment"))
    return pairs


def group_ids(texts: Sequence[str]) -> list[int]:
    """Connected components of the near-duplicate graph: one group number per text.

    Groups are numbered 0, 1, ... in order of first appearance, so the result is stable.
    """
    parent = list(range(len(texts)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j, _ in near_duplicate_pairs(texts):
        parent[root(j)] = root(i)
    numbering: dict[int, int] = {}
    return [numbering.setdefault(root(i), len(numbering)) for i in range(len(texts))]


EMBEDDING_THRESHOLD = 0.85
"""Cosine of MiniLM sentence embeddings at or above which two sentences count as near
duplicates. Justified on this project's data: sentences written to be distinct (the
supplement, against itself) never exceed 0.79, while pairs the text rules above flag have a
median of 0.90; between 0.85 and 0.91 sit restatements of one fact in other words."""


def embedding_similarity(texts_a: Sequence[str], texts_b: Sequence[str]) -> np.ndarray:
    """Cosine similarity of the packaged MiniLM sentence embeddings, ``len(a) x len(b)``."""
    from stance.models.encoder import encode

    return encode(list(texts_a)) @ encode(list(texts_b)).T


def near_duplicates_across(
    texts_a: Sequence[str], texts_b: Sequence[str], use_embeddings: bool = True
) -> dict[int, tuple[int, str]]:
    """For each text of ``a`` that nearly duplicates some text of ``b``: ``i -> (j, reason)``.

    Text rules first (exact, cosine, containment), then embedding cosine >=
    :data:`EMBEDDING_THRESHOLD` when ``use_embeddings``.
    """
    found: dict[int, tuple[int, str]] = {}
    for i, j, reason in near_duplicate_pairs(texts_a, texts_b):
        found.setdefault(i, (j, reason))
    if use_embeddings and texts_a and texts_b:
        similarity = embedding_similarity(texts_a, texts_b)
        for i in range(len(texts_a)):
            j = int(similarity[i].argmax())
            if i not in found and similarity[i, j] >= EMBEDDING_THRESHOLD:
                found[i] = (j, f"embedding {similarity[i, j]:.2f}")
    return found
