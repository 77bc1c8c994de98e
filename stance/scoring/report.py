"""A self-contained HTML report of one article: every sentence highlighted by its label.

The page is titled by the article's headline (its first sentence) and opens with the article
summary (engagement, balance, stance index with their intervals, the article label), a legend,
a strip showing the stance sentence by sentence along the article, and the most confident
sentences of each side. Hovering a sentence shows its three probabilities. No script, no
external resource: the file can be mailed or archived as it is.
"""

from __future__ import annotations

import html
from typing import Any

from stance.api import ArticleScore
from stance.labels import LABELS

COLOURS = {"pro-scanning": "214, 96, 77", "pro-encryption": "67, 147, 195", "neutral": "200, 200, 200"}
SIDES = ("pro-encryption", "pro-scanning")
HEADLINE_MAX = 160  # characters of the first sentence used as the page title


def _number(value: Any, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def _interval(summary: dict[str, Any], name: str, signed: bool = False) -> str:
    low, high = summary.get(f"{name}_ci_low"), summary.get(f"{name}_ci_high")
    if low is None or high is None:
        return ""
    return f" <span class='ci'>[{_number(low, signed)}, {_number(high, signed)}]</span>"


def _colour(label: str, p: float) -> str:
    return f"rgba({COLOURS[label]}, {0.15 + 0.6 * p:.2f})"


def headline(score: ArticleScore, fallback: str) -> str:
    """The article's first sentence (shortened to :data:`HEADLINE_MAX` characters), else ``fallback``."""
    if not score.sentences:
        return fallback
    first = score.sentences[0]["text"].strip()
    return first if len(first) <= HEADLINE_MAX else first[: HEADLINE_MAX - 1].rstrip() + "…"


def _marked(sentence: dict[str, Any]) -> str:
    """The sentence's escaped text with its explained spans in ``<mark class="why">`` (overlaps skipped)."""
    text, cursor, out = sentence["text"], 0, []
    for item in sorted(sentence.get("explanation") or [], key=lambda a: a["start"]):
        if item["start"] < cursor:
            continue
        out.append(html.escape(text[cursor: item["start"]]))
        out.append(f'<mark class="why" title="weight {item["weight"]:.2f}">{html.escape(text[item["start"]: item["end"]])}</mark>')
        cursor = item["end"]
    out.append(html.escape(text[cursor:]))
    return "".join(out)


def render_report(text: str, score: ArticleScore, title: str = "stance report", explanation_unit: str | None = None) -> str:
    """HTML for ``text`` with every sentence in a ``<span class="sentence label-..." id="s<index>">``.

    ``title`` (e.g. the file name) is shown under the headline. Highlight strength follows the
    predicted label's probability (alpha 0.15 + 0.6 p). Sentences that carry an ``explanation``
    (``score_article(..., explain=k)``) have those words underlined (``<mark class="why">``) and
    listed in the hover text; ``explanation_unit`` says what their weights measure. Text between
    sentences (line breaks, spaces) is kept, so the article reads as written. All text is
    HTML-escaped.
    """
    parts: list[str] = []
    cursor = 0
    for sentence in score.sentences:
        parts.append(html.escape(text[cursor: sentence["start"]]))
        label, p = sentence["label"], sentence["scores"][sentence["label"]]
        tooltip = ", ".join(f"{name} {sentence['scores'][name]:.2f}" for name in LABELS)
        if sentence.get("explanation"):
            tooltip += "; why: " + ", ".join(f"{a['span']} ({a['weight']:.2f})" for a in sentence["explanation"])
        parts.append(
            f'<span class="sentence label-{label}" id="s{sentence["index"]}" data-label="{label}" '
            f'data-p="{p:.3f}" title="{html.escape(tooltip)}" style="background: {_colour(label, p)}">'
            f"{_marked(sentence)}</span>"
        )
        cursor = sentence["end"]
    parts.append(html.escape(text[cursor:]))
    summary = score.summary
    rows = "".join(
        f"<tr><td><span class='swatch' style='background: rgb({COLOURS[label]})'></span>{label}</td>"
        f"<td>{summary[f'n_{label}']}</td><td>{summary[f'share_{label}']:.0%}</td>"
        f"<td>{summary[f'mean_p_{label}']:.2f}</td></tr>"
        for label in LABELS
    )
    strip = "".join(
        f"<a href='#s{s['index']}' class='cell' title='sentence {s['index'] + 1}: {s['label']}' "
        f"style='background: {_colour(s['label'], s['scores'][s['label']])}'></a>"
        for s in score.sentences
    )
    legend = "".join(f"<li><span class='swatch' style='background: rgb({COLOURS[label]})'></span>{label}</li>"
                     for label in LABELS)
    tops = "".join(
        f"<div class='top' id='top-{side}'><h3>Most confident {side} sentences</h3><ol>"
        + ("".join(f"<li><a href='#s{t['index']}'>{html.escape(t['text'])}</a> <span class='ci'>p={t['p']:.2f}</span></li>"
                   for t in summary.get(f"top_{side}") or []) or "<li class='none'>none</li>")
        + "</ol></div>"
        for side in SIDES
    )
    heading = headline(score, title)
    explained = any(s.get("explanation") for s in score.sentences)
    why_note = (f" <span id='why-note'>Underlined words pushed a sentence towards its label (hover for their weight: "
                f"{html.escape(explanation_unit or 'the model explanation weight')}).</span>") if explained else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(heading)}</title>
<style>
body {{ font-family: Georgia, serif; max-width: 52rem; margin: 2rem auto; line-height: 1.6; }}
#summary {{ font-family: sans-serif; border: 1px solid #ccc; padding: 1rem; margin-bottom: 2rem; }}
#summary table {{ border-collapse: collapse; }} #summary td, #summary th {{ padding: .2rem .8rem; }}
.swatch {{ display: inline-block; width: .8rem; height: .8rem; margin-right: .4rem; }}
#legend ul {{ list-style: none; padding: 0; display: flex; gap: 1.2rem; }}
#strip {{ display: flex; height: 1.2rem; border: 1px solid #ccc; }} #strip .cell {{ flex: 1; }}
.ci {{ color: #666; font-size: .9em; }} mark.why {{ background: none; text-decoration: underline 2px; }} .subtitle {{ color: #666; }}
#article {{ white-space: pre-wrap; }} .sentence {{ border-radius: 3px; }}
</style></head>
<body>
<section id="summary">
<h1 id="headline">{html.escape(heading)}</h1>
<p class="subtitle">{html.escape(title)} · model <code>{html.escape(str(summary.get('model')))}</code>,
{summary['n_sentences']} sentences</p>
<p>Article label <strong id="article-label">{html.escape(str(summary.get('article_label')))}</strong>.
Stance index <strong id="stance-index">{_number(summary.get('stance_index'), True)}</strong>{_interval(summary, 'stance_index', True)}
(mean of p(pro-encryption) − p(pro-scanning) over all sentences, in [−1, 1]; near 0 for neutral coverage and for a
balanced debate). Engagement <strong id="engagement">{_number(summary.get('engagement'))}</strong>{_interval(summary, 'engagement')}
(share of sentences that take a side). Balance <strong id="balance">{_number(summary.get('balance'), True)}</strong>{_interval(summary, 'balance', True)}
(pro-encryption − pro-scanning over the sentences that take a side; – when none does;
<span id="net-stance">net stance {summary['net_stance']:+.2f}</span>). Intervals: 95 %, bootstrap over the article's sentences.</p>
<table><tr><th>label</th><th>sentences</th><th>share</th><th>mean p</th></tr>{rows}</table>
<div id="legend"><ul>{legend}</ul>
<p class="ci">Highlight strength follows the probability of the sentence's label. Hover a sentence to see its three
probabilities; the strip below shows the stance sentence by sentence along the article (click a cell to jump).{why_note}</p></div>
<div id="strip">{strip}</div>
{tops}
</section>
<article id="article">{''.join(parts)}</article>
</body></html>
"""
