"""How a :class:`~stance.scoring.corpus.CorpusView` is shown: a Markdown table, two PNG plots
(matplotlib ``Figure`` objects without pyplot, so no process-wide state changes) and one
self-contained HTML dashboard (no external resources; the PNGs are embedded as data URIs)."""

from __future__ import annotations

import base64
import html
import io
import math
from typing import TYPE_CHECKING

from stance.labels import LABELS

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from stance.scoring.corpus import CorpusView

# the HTML report's colours, so a label looks the same in every page the package writes
COLOURS = {"pro-scanning": (214, 96, 77), "pro-encryption": (67, 147, 195), "neutral": (200, 200, 200)}
# left to right in the stacked bars: one side, no side, the other side
SHARE_ORDER = ("pro-scanning", "neutral", "pro-encryption")
ARTICLE_LABEL_COLUMNS = ("pro-encryption", "pro-scanning", "mixed", "neutral_coverage")
INTERVAL_WORDS = "95 % percentile bootstrap interval over articles"
# a plot of more rows than this is unreadable (and a large PNG): field plots show the groups with
# the most articles, date plots of more buckets draw the shares as areas instead of bars
MAX_PLOT_GROUPS = 30
MAX_DATE_BARS = 60

EXPLANATIONS = [
    ("articles", "Articles of the group that were scored. Rows of the score output with an <code>error</code> "
                 "are not used; they are counted in <em>errors skipped</em>."),
    ("sentences", "Sentences of the scored articles, summed."),
    ("stance index", "Per article, (sum of P(pro-encryption) - sum of P(pro-scanning)) / number of sentences, "
                     "in [-1, 1]: -1 every sentence surely pro-scanning, +1 every sentence surely pro-encryption, "
                     "near 0 for neutral coverage or a balanced debate. The table gives the mean over the group's "
                     "articles (each article counts once, whatever its length)."),
    ("engagement", "Per article, the share of its sentences labelled with a side (pro-encryption or pro-scanning), "
                   "in [0, 1]: how much the article argues, not which way. The table gives the mean over articles."),
    ("intervals", "The [low, high] after a mean is its 95 % interval: the group's articles are resampled with "
                  "replacement 2,000 times (bootstrap over articles, 2,000 resamples, percentile interval), the "
                  "mean is taken each time, and the 2.5th and 97.5th percentiles of those means are the bounds. "
                  "The random generator is numpy's default_rng with the seed shown above, so a rerun gives the "
                  "same bounds. A group of one article has no spread: its interval is the value itself. The "
                  "interval reflects which articles happen to be in the group, not errors of the model."),
    ("sentence shares", "All sentences of the group pooled: sum of n_&lt;label&gt; / sum of n_sentences. Long "
                        "articles weigh more here than in the article means."),
    ("article shares", "The share of the group's articles with each article label of the score output "
                       "(pro-encryption, pro-scanning, mixed, neutral coverage; the rule is in the README's column "
                       "reference)."),
    ("unknown", "Articles whose field is missing (or, grouping by date, not an ISO date such as 2024-06-20) "
                "form the group <em>unknown</em>; a plot over time leaves them out."),
]


def _num(value: float, digits: int = 3) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _with_interval(mean: float, low: float, high: float, sign: str = "+") -> str:
    if isinstance(mean, float) and math.isnan(mean):
        return "n/a"
    if isinstance(low, float) and math.isnan(low):  # one article: no interval
        return f"{mean:{sign}.3f} [n/a]"
    return f"{mean:{sign}.3f} [{low:{sign}.3f}, {high:{sign}.3f}]"


def _display_rows(view: CorpusView) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the human table (Markdown and HTML), formatted."""
    header = ["group", "articles", "errors skipped", "sentences", "stance index (mean [95 % CI])",
              "engagement (mean [95 % CI])", *[f"sentence share {label}" for label in SHARE_ORDER],
              *[f"article share {label.replace('_', ' ')}" for label in ARTICLE_LABEL_COLUMNS]]
    rows = []
    for r in view.table.to_dict(orient="records"):
        rows.append([str(r["group"]), str(r["articles"]), str(r["errors_skipped"]), str(r["sentences"]),
                     _with_interval(r["stance_index_mean"], r["stance_index_ci_low"], r["stance_index_ci_high"]),
                     _with_interval(r["engagement_mean"], r["engagement_ci_low"], r["engagement_ci_high"], sign="-"),
                     *[_num(r[f"sentence_share_{label}"]) for label in SHARE_ORDER],
                     *[_num(r[f"article_share_{label}"]) for label in ARTICLE_LABEL_COLUMNS]])
    return header, rows


def _settings_line(view: CorpusView) -> str:
    errors = int(view.table["errors_skipped"].sum())
    return (f"{view.total_rows} article rows from {view.source or 'the score output'} "
            f"({errors} error rows skipped), grouped by {view.grouping.describe()}; intervals: 95 %, bootstrap "
            f"over articles, {view.resamples:,} resamples, percentile interval (numpy default_rng, seed {view.seed}).")


def markdown_table(view: CorpusView) -> str:
    """The table as GitHub Markdown, after one line saying where the rows came from and how the
    intervals were made (with the seed)."""
    header, rows = _display_rows(view)

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    body = [line(header), "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|", *map(line, rows)]
    return f"Corpus view: {_settings_line(view)}\n\n" + "\n".join(body) + "\n"


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def _rgb(label: str) -> tuple[float, float, float]:
    r, g, b = COLOURS[label]
    return r / 255, g / 255, b / 255


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _empty(figure: Figure, title: str) -> bytes:
    ax = figure.subplots()
    ax.set_axis_off()
    ax.set_title(title)
    ax.text(0.5, 0.5, "no scored articles", ha="center", va="center", transform=ax.transAxes)
    return _png(figure)


def _plotted(view: CorpusView) -> tuple[pd.DataFrame, str]:
    """The groups a plot shows (in table order) and a note on those it leaves out: groups without
    scored articles, and for a field beyond :data:`MAX_PLOT_GROUPS` those with fewest articles."""
    table = view.table[view.table["articles"] > 0]
    if view.grouping.is_date or len(table) <= MAX_PLOT_GROUPS:
        return table, ""
    # a stable sort keeps table order among groups of equal size
    kept = table.sort_values("articles", ascending=False, kind="stable").index[:MAX_PLOT_GROUPS]
    return table.loc[sorted(kept)], f" ({MAX_PLOT_GROUPS} groups with most articles of {len(table)}; all in the table)"


def plot_stance_index(view: CorpusView) -> bytes:
    """PNG: per group the mean article stance index with its 95 % bootstrap interval over articles
    (point and error bar); a line over time when grouping by date (articles with an unknown date
    are left out and counted in a note). Groups without scored articles are left out."""
    table, note = _plotted(view)
    what = view.grouping.describe() + note
    title = f"Mean article stance index by {what}\n(article mean: each article counts once; {INTERVAL_WORDS})"
    xlabel = "stance index: -1 pro-scanning, 0 neutral or balanced, +1 pro-encryption"
    if view.grouping.is_date:
        dated = table[table["group"].isin(view.bucket_starts)]
        figure = _figure(9, 4.8)
        if not len(dated):
            return _empty(figure, title)
        import matplotlib.dates as mdates

        ax = figure.subplots()
        x = [view.bucket_starts[g] for g in dated["group"]]
        mean = dated["stance_index_mean"].to_numpy()
        error = [mean - dated["stance_index_ci_low"].to_numpy(), dated["stance_index_ci_high"].to_numpy() - mean]
        ax.errorbar(x, mean, yerr=error, fmt="-o", color="0.2", ecolor="0.55", capsize=3, markersize=4, linewidth=1)
        ax.axhline(0, color="0.7", linewidth=0.8, zorder=0)
        locator = mdates.AutoDateLocator()
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        ax.set_ylabel(xlabel.replace(": ", ":\n", 1))
        ax.set_xlabel(f"{view.grouping.column} (start of each {view.grouping.bucket})")
        unknown = int(table.loc[~table["group"].isin(view.bucket_starts), "articles"].sum())
        if unknown:
            ax.annotate(f"{unknown} article(s) with an unknown date not plotted", (0, -0.22),
                        xycoords="axes fraction", fontsize=8, color="0.4")
    else:
        figure = _figure(8, 1.6 + 0.27 * max(len(table), 1))
        if not len(table):
            return _empty(figure, title)
        ax = figure.subplots()
        y = list(range(len(table)))[::-1]  # first group on top, as in the table
        mean = table["stance_index_mean"].to_numpy()
        error = [mean - table["stance_index_ci_low"].to_numpy(), table["stance_index_ci_high"].to_numpy() - mean]
        ax.errorbar(mean, y, xerr=error, fmt="o", color="0.2", ecolor="0.55", capsize=3, markersize=4)
        ax.axvline(0, color="0.7", linewidth=0.8, zorder=0)
        ax.set_yticks(y, [f"{g} (n={n})" for g, n in zip(table["group"], table["articles"])], fontsize=8)
        ax.set_ylim(-0.7, len(table) - 0.3)
        ax.set_xlabel(xlabel)
        low = min(-0.1, float(table["stance_index_ci_low"].min()) - 0.05)
        high = max(0.1, float(table["stance_index_ci_high"].max()) + 0.05)
        ax.set_xlim(max(-1.05, low), min(1.05, high))
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    return _png(figure)


def plot_sentence_shares(view: CorpusView) -> bytes:
    """PNG: per group the pooled sentence shares (sum of n_<label> / sum of n_sentences) as one
    stacked bar: pro-scanning, neutral, pro-encryption. Bars are vertical in time order when grouping
    by date (stacked areas over time beyond :data:`MAX_DATE_BARS` buckets, unknown dates left out),
    horizontal otherwise. Groups without scored articles are left out."""
    table, note = _plotted(view)
    if view.grouping.is_date and len(table) > MAX_DATE_BARS:
        return _shares_over_time(view, table)
    title = (f"Pooled sentence shares by {view.grouping.describe()}{note}\n"
             "(pooled sentences: all sentences of a group together, sum of n_label / sum of n_sentences)")
    labels = [f"{g} (n={n})" for g, n in zip(table["group"], table["articles"])]
    if view.grouping.is_date:
        figure = _figure(max(6.0, 1.5 + 0.32 * len(table)), 4.8)
    else:
        figure = _figure(8, 1.8 + 0.27 * max(len(table), 1))
    if not len(table):
        return _empty(figure, title)
    ax = figure.subplots()
    positions = list(range(len(table)))
    start = [0.0] * len(table)
    for label in SHARE_ORDER:
        share = table[f"sentence_share_{label}"].to_numpy()
        if view.grouping.is_date:
            ax.bar(positions, share, bottom=start, color=_rgb(label), label=label, width=0.8)
        else:
            ax.barh(positions[::-1], share, left=start, color=_rgb(label), label=label, height=0.8)
        start = [a + b for a, b in zip(start, share)]
    if view.grouping.is_date:
        ax.set_xticks(positions, labels, rotation=60, ha="right", fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_ylabel("share of sentences")
    else:
        ax.set_yticks(positions[::-1], labels, fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_xlabel("share of sentences")
    figure.legend(loc="outside lower center", ncol=3, fontsize=8, frameon=False)
    ax.set_title(title, fontsize=10)
    return _png(figure)


def _shares_over_time(view: CorpusView, table: pd.DataFrame) -> bytes:
    dated = table[table["group"].isin(view.bucket_starts)]
    figure = _figure(9, 4.8)
    title = (f"Pooled sentence shares by {view.grouping.describe()}\n"
             "(pooled sentences: all sentences of a group together, sum of n_label / sum of n_sentences)")
    if not len(dated):
        return _empty(figure, title)
    ax = figure.subplots()
    ax.stackplot([view.bucket_starts[g] for g in dated["group"]],
                 *[dated[f"sentence_share_{label}"].to_numpy() for label in SHARE_ORDER],
                 colors=[_rgb(label) for label in SHARE_ORDER], labels=list(SHARE_ORDER), step="post")
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of sentences")
    ax.set_title(title, fontsize=10)
    figure.legend(loc="outside lower center", ncol=3, fontsize=8, frameon=False)
    return _png(figure)


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em; padding: 0 1em; color: #222; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f2f2f2; }
.table-wrap { overflow-x: auto; }
figure { margin: 1.5em 0; }
figure img { max-width: 100%; }
figcaption, .settings { color: #555; font-size: 0.9em; }
dt { font-weight: bold; margin-top: 0.5em; }
"""


def render_dashboard(view: CorpusView, pngs: dict[str, bytes]) -> str:
    """One self-contained HTML page: the settings (source, field, seed), the table, the plots in
    ``pngs`` (keys ``stance_index`` and ``sentence_shares``, PNG bytes embedded as base64 data URIs)
    and what every number means. All text from the data is HTML-escaped."""
    header, rows = _display_rows(view)
    what = html.escape(view.grouping.describe())
    table = ["<table class='corpus-table'>", "<thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header)
             + "</tr></thead>", "<tbody>"]
    table += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows]
    table += ["</tbody></table>"]
    captions = {
        "stance_index": ("Mean article stance index per group with its 95 % bootstrap interval over articles "
                         "(each article counts once)" + (", over time" if view.grouping.is_date else "") + "."),
        "sentence_shares": "Pooled sentence shares per group: all sentences of the group together.",
    }
    figures = []
    for name, caption in captions.items():
        if name in pngs:
            data = base64.b64encode(pngs[name]).decode("ascii")
            figures.append(f"<figure><img class='plot' id='plot-{name}' alt='{html.escape(caption)}' "
                           f"src='data:image/png;base64,{data}'><figcaption>{html.escape(caption)}</figcaption>"
                           "</figure>")
    models = ", ".join(view.models) or "not recorded"
    explanations = "".join(f"<dt>{html.escape(term)}</dt><dd>{text}</dd>" for term, text in EXPLANATIONS)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Corpus view by {what}</title>
<style>{_CSS}</style></head>
<body>
<h1>Corpus view by {what}</h1>
<p class="settings">{html.escape(_settings_line(view))} Model(s): {html.escape(models)}.
Labels: {html.escape(", ".join(LABELS))}.</p>
<div class="table-wrap">{"".join(table)}</div>
{"".join(figures)}
<h2>What the numbers mean</h2>
<dl>{explanations}</dl>
</body></html>
"""
