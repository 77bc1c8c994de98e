"""Mini-articles: labelled in context, stored as text plus a label table keyed by character span.

A writer produces articles as blocks of sentences (``data/articles/FORMAT.md``). :func:`render`
turns one into its text and the ``[start, end)`` span of every labelled sentence;
:func:`align` maps the segmenter's sentences onto those spans and raises
:class:`AlignmentError` naming the article and the text when a segmenter sentence joins spans that
take both sides or falls outside every span. Labels thus survive a change of segmenter as long as
it never joins two sides, and the check fails loudly when it does.

Two sets share this module: ``articles`` (training, and held out by article for the context
study) and ``article_test`` (an independent article-level test set, evaluation only).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stance import paths
from stance.context import sentence_contexts
from stance.data.files import read_csv, write_csv
from stance.labels import LABELS, check_label
from stance.segment import Sentence, segment

BLOCK_KINDS = ("headline", "standfirst", "byline", "dateline", "credit", "read-more", "paragraph", "quote",
               "lead-in", "bullet", "boilerplate")
ARTICLE_SIDES = ("pro-encryption", "pro-scanning", "neutral-or-balanced")
SPAN_FIELDS = ("doc", "start", "end", "label", "note", "text")
ARTICLE_FIELDS = ("id", "register", "outlet", "date", "side", "n_spans")
BULLET_MARK = "• "
SETS = {"articles": "articles", "article_test": "article_test"}


class AlignmentError(ValueError):
    """Segmenter output does not map onto an article's labelled spans; names the article and text."""


@dataclass(frozen=True)
class Span:
    """A labelled sentence of a mini-article: ``[start, end)`` in the article text."""

    start: int
    end: int
    label: str
    note: str


def render(article: dict[str, Any]) -> tuple[str, list[Span]]:
    """An article's text and labelled spans, by the stored form of ``FORMAT.md``.

    Each block is one line, its sentences joined by a space; a bullet line starts with ``• ``
    (inside the span of its first sentence); blocks are separated by a blank line except
    consecutive bullets. Raises ``ValueError`` naming the article for an unknown block kind or
    label, or an empty sentence.
    """
    where = article.get("id", "?")
    text = ""
    spans: list[Span] = []
    previous_kind = None
    for number, block in enumerate(article["blocks"]):
        kind = block.get("kind")
        if kind not in BLOCK_KINDS:
            raise ValueError(f"{where} block {number}: unknown kind {kind!r}")
        if text:
            text += "\n" if kind == "bullet" and previous_kind == "bullet" else "\n\n"
        for k, sentence in enumerate(block["sentences"]):
            body = " ".join(str(sentence.get("text", "")).split())
            if not body:
                raise ValueError(f"{where} block {number}: empty sentence")
            label = check_label(sentence.get("label"), f"{where} block {number}")
            start = len(text)
            if k:
                text += " "
                start += 1
            elif kind == "bullet":
                text += BULLET_MARK
            text += body
            spans.append(Span(start, len(text), label, str(sentence.get("note", "") or "")))
        previous_kind = kind
    return text + "\n", spans


def align(doc: str, text: str, spans: Sequence[Span]) -> list[tuple[Sentence, Span]]:
    """Each segmenter sentence of ``text`` with the labelled span that gives its label.

    A sentence inside one span takes its label. A sentence that joins several spans (a byline
    "By A B is a professor..." written without a full stop, a forum "Reply from X:" before the
    post) takes the one side among them, as an annotator of the joined sentence would (rule 4 of
    LABELS.md: the clause that argues decides), or ``neutral`` when none takes a side. Raises
    :class:`AlignmentError` naming the article and the sentence when the joined spans take both
    sides, or the sentence lies outside every span.
    """
    pairs = []
    for sentence in segment(text):
        overlapping = [s for s in spans if s.start < sentence.end and sentence.start < s.end]
        if not overlapping:
            raise AlignmentError(f"{doc}: the segmenter's sentence {sentence.text[:80]!r} lies outside every "
                                 "labelled span")
        sides = {s.label for s in overlapping} - {"neutral"}
        if len(sides) > 1:
            raise AlignmentError(f"{doc}: the segmenter's sentence {sentence.text[:80]!r} joins labelled sentences "
                                 f"that take both sides ({', '.join(s.label for s in overlapping)})")
        pairs.append((sentence, next((s for s in overlapping if s.label in sides), overlapping[0])))
    return pairs


def set_dir(name: str, data: Path | None = None) -> Path:
    """Folder of the set ``articles`` or ``article_test``."""
    if name not in SETS:
        raise ValueError(f"unknown article set {name!r}; known: {sorted(SETS)}")
    return (Path(data) if data is not None else paths.data_dir()) / SETS[name]


def written_articles(name: str, data: Path | None = None) -> list[dict[str, Any]]:
    """Every article of the writers' JSON files of a set (``written/*.json``), in id order."""
    folder = set_dir(name, data) / "written"
    articles: list[dict[str, Any]] = []
    for path in sorted(folder.glob("*.json")):
        articles += json.loads(path.read_text(encoding="utf-8"))
    seen: set[str] = set()
    for article in articles:
        if article["id"] in seen:
            raise ValueError(f"article id {article['id']} used twice in {folder}")
        if article.get("side") not in ARTICLE_SIDES:
            raise ValueError(f"{article['id']}: side {article.get('side')!r} is not one of {ARTICLE_SIDES}")
        seen.add(article["id"])
    return sorted(articles, key=lambda a: a["id"])


def build_set(name: str, data: Path | None = None, labels: dict[tuple[str, int], str] | None = None) -> dict[str, Any]:
    """Write ``texts/<id>.txt``, ``spans.csv`` and ``articles.csv`` of a set from its written JSON.

    ``labels``: adjudicated labels ``{(doc, span index): label}`` replacing the writer's. Checks
    every article aligns. Returns counts for the data summary.
    """
    folder = set_dir(name, data)
    texts_dir = folder / "texts"
    texts_dir.mkdir(parents=True, exist_ok=True)
    span_rows, article_rows = [], []
    for article in written_articles(name, data):
        text, spans = render(article)
        doc = article["id"]
        align(doc, text, spans)
        (texts_dir / f"{doc}.txt").write_text(text, encoding="utf-8")
        for index, span in enumerate(spans):
            label = (labels or {}).get((doc, index), span.label)
            span_rows.append({"doc": doc, "start": span.start, "end": span.end, "label": label, "note": span.note,
                              "text": text[span.start : span.end]})
        article_rows.append({**{k: article.get(k, "") for k in ARTICLE_FIELDS}, "n_spans": len(spans)})
    write_csv(folder / "spans.csv", span_rows, SPAN_FIELDS)
    write_csv(folder / "articles.csv", article_rows, ARTICLE_FIELDS)
    counts = {label: sum(r["label"] == label for r in span_rows) for label in LABELS}
    sides = {side: sum(a["side"] == side for a in article_rows) for side in ARTICLE_SIDES}
    return {"articles": len(article_rows), "sentences": len(span_rows), "labels": counts, "sides": sides}


def load_set(name: str, data: Path | None = None) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Sentence rows and article rows of a built set.

    Sentence rows (one per segmenter sentence, as a model sees them at scoring time) hold ``id``,
    ``text``, ``label``, ``doc`` (the article), ``group`` (the article: its sentences stay on one
    side of every fold), ``source``, ``context`` (:func:`stance.context.sentence_contexts`),
    ``start``/``end``. Raises :class:`AlignmentError` if the stored text and spans disagree.
    """
    folder = set_dir(name, data)
    articles = read_csv(folder / "articles.csv")
    by_doc: dict[str, list[Span]] = {}
    for row in read_csv(folder / "spans.csv"):
        by_doc.setdefault(row["doc"], []).append(Span(int(row["start"]), int(row["end"]), row["label"], row["note"]))
    rows: list[dict[str, Any]] = []
    for article in articles:
        doc = article["id"]
        text = (folder / "texts" / f"{doc}.txt").read_text(encoding="utf-8")
        pairs = align(doc, text, by_doc.get(doc, []))
        contexts = sentence_contexts(text, [sentence for sentence, _ in pairs])
        for index, ((sentence, span), context) in enumerate(zip(pairs, contexts)):
            rows.append({"id": f"{doc}-{index:03d}", "text": sentence.text, "label": span.label, "doc": doc,
                         "group": doc, "source": name, "context": context, "start": sentence.start,
                         "end": sentence.end})
    return rows, articles
