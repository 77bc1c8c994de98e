"""The context a sentence is read in: the article's headline, the list lead-in, the previous sentence.

Readers resolve "the move" or "the plans" from the sentence before, and a bullet item
("• survivors can reach a helpline unseen") takes its side from the lead-in above the list
("Encryption matters because:"). Models that accept context get it as one string built here,
the same way in training (mini-articles, seeds) and in scoring (:func:`stance.score_article`),
so what a model learned from is what it later sees. A lone sentence has the empty context.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

# a list item: a bullet glyph or a short number/letter marker at the start of its line
BULLET = re.compile(r"^\s*(?:[•◦▪●·\-\*–—]|\(?\d{1,2}[.)]|\(?[a-z][.)])\s+")
# joins the parts of a context; its words are rare in text, so TF-IDF features keep them apart
SEPARATOR = " | "


class HasSpan(Protocol):
    text: str
    start: int
    end: int


def is_list_item(document: str, sentence: HasSpan) -> bool:
    """Whether ``sentence`` starts a line that begins with a list marker."""
    line_start = document.rfind("\n", 0, sentence.start) + 1
    return not document[line_start : sentence.start].strip() and bool(BULLET.match(document[line_start : sentence.end]))


def sentence_contexts(document: str, sentences: Sequence[HasSpan]) -> list[str]:
    """One context string per sentence of ``document`` (same order), empty for the first.

    Parts, in this order and without repeats: the headline (the document's first sentence), the
    lead-in of the list the sentence belongs to (the last sentence before the list when it ends
    with ``:``), and the previous sentence. ``sentences`` are the segmenter's spans of ``document``
    (objects with ``text``, ``start`` and ``end``). Returns ``len(sentences)`` strings.
    """
    contexts: list[str] = []
    lead_in = ""
    previous_is_item = False
    for index, sentence in enumerate(sentences):
        if index == 0:
            contexts.append("")
            continue
        item = is_list_item(document, sentence)
        before = sentences[index - 1]
        if item and not previous_is_item:
            lead_in = before.text if before.text.rstrip().endswith(":") else ""
        elif not item:
            lead_in = ""
        parts = [sentences[0].text]
        for part in (lead_in, before.text):
            if part and part not in parts:
                parts.append(part)
        contexts.append(SEPARATOR.join(p.strip() for p in parts))
        previous_is_item = item
    return contexts


def segment_with_context(document: str) -> tuple[list, list[str]]:
    """The document's sentences (:func:`stance.segment.segment`) and their contexts, same order."""
    from stance.segment import segment

    sentences = segment(document)
    return sentences, sentence_contexts(document, sentences)
