"""A self-contained HTML report: the article with each sentence highlighted by its label."""

from __future__ import annotations

import html

from stance.api import ArticleScore
from stance.labels import LABELS

COLOURS = {"pro-scanning": "214, 96, 77", "pro-encryption": "67, 147, 195", "neutral": "200, 200, 200"}


def render_report(text: str, score: ArticleScore, title: str = "stance report") -> str:
    """HTML for ``text`` with every sentence in a ``<span class="sentence label-...">``.

    Highlight strength follows the predicted label's probability; the summary sits on top.
    Text between sentences (line breaks, spaces) is kept, so the article reads as written.
    """
    parts: list[str] = []
    cursor = 0
    for sentence in score.sentences:
        parts.append(html.escape(text[cursor: sentence["start"]]))
        p = sentence["scores"][sentence["label"]]
        alpha = 0.15 + 0.6 * p
        tooltip = ", ".join(f"{label} {sentence['scores'][label]:.2f}" for label in LABELS)
        parts.append(
            f'<span class="sentence label-{sentence["label"]}" data-label="{sentence["label"]}" '
            f'data-p="{p:.3f}" title="{html.escape(tooltip)}" '
            f'style="background: rgba({COLOURS[sentence["label"]]}, {alpha:.2f})">'
            f"{html.escape(sentence['text'])}</span>"
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
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: Georgia, serif; max-width: 52rem; margin: 2rem auto; line-height: 1.6; }}
#summary {{ font-family: sans-serif; border: 1px solid #ccc; padding: 1rem; margin-bottom: 2rem; }}
#summary table {{ border-collapse: collapse; }} #summary td, #summary th {{ padding: .2rem .8rem; }}
.swatch {{ display: inline-block; width: .8rem; height: .8rem; margin-right: .4rem; }}
#article {{ white-space: pre-wrap; }} .sentence {{ border-radius: 3px; }}
</style></head>
<body>
<section id="summary">
<h1>{html.escape(title)}</h1>
<p>Model <code>{html.escape(str(summary.get('model')))}</code>, {summary['n_sentences']} sentences,
net stance <strong id="net-stance">{summary['net_stance']:+.2f}</strong>
(-1 all pro-scanning, +1 all pro-encryption, over sentences that take a side).</p>
<table><tr><th>label</th><th>sentences</th><th>share</th><th>mean p</th></tr>{rows}</table>
</section>
<article id="article">{''.join(parts)}</article>
</body></html>
"""
