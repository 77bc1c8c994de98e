"""The corpus view: hand-made `stance score` article rows in JSONL, CSV and Parquet, grouped by a
field and by date buckets; exact group statistics, bootstrap intervals, the CLI and the dashboard."""

import json
import math
import re
import shutil
import subprocess
import sys
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from stance.cli import app
from stance.labels import LABELS
from stance.scoring.corpus import (
    OUTPUT_FILES,
    UNKNOWN,
    Grouping,
    bootstrap_mean,
    bucket_of,
    corpus_view,
    find_articles_file,
    parse_date,
    parse_grouping,
    read_article_rows,
    write_corpus,
)

# the article-row columns of `stance score` output, in their order, then kept metadata
COLUMNS = ["source", "doc_id", "n_sentences", *[f"n_{x}" for x in LABELS], *[f"share_{x}" for x in LABELS],
           *[f"mean_p_{x}" for x in LABELS], "engagement", "engagement_expected", "engagement_ci_low",
           "engagement_ci_high", "balance", "balance_ci_low", "balance_ci_high", "stance_index", "stance_index_ci_low",
           "stance_index_ci_high", "article_label", "net_stance", "top_pro-encryption", "top_pro-scanning", "model",
           "model_sha256", "warnings", "error", "outlet", "date"]


def row(doc_id, outlet, day, scan=0, enc=0, neutral=0, index=None, label=None, error=None):
    """One article row as `stance score` writes it; an error row has n_sentences 0 and nulls."""
    r = dict.fromkeys(COLUMNS)
    r.update(source=f"in.jsonl#{doc_id}", doc_id=doc_id, n_sentences=0, model="baseline", model_sha256="ab" * 32,
             warnings=None, error=error, outlet=outlet, date=day)
    if error is None:
        n = scan + enc + neutral
        counts = dict(zip(LABELS, (scan, enc, neutral)))
        r.update(n_sentences=n, **{f"n_{k}": v for k, v in counts.items()},
                 **{f"share_{k}": v / n for k, v in counts.items()}, **{f"mean_p_{k}": v / n for k, v in counts.items()},
                 engagement=(scan + enc) / n, engagement_expected=(scan + enc) / n, stance_index=index,
                 stance_index_ci_low=index - 0.1, stance_index_ci_high=index + 0.1, article_label=label,
                 balance=None if scan + enc == 0 else (enc - scan) / (scan + enc),
                 net_stance=0.0 if scan + enc == 0 else (enc - scan) / (scan + enc),
                 **{"top_pro-encryption": [{"index": 0, "text": "Keys stay | private.", "p": 0.9}] if enc else [],
                    "top_pro-scanning": []})
    return r


ROWS = [
    row("a1", "Ledger", "2024-01-01", scan=1, enc=3, neutral=1, index=0.4, label="pro-encryption"),
    row("a2", "Ledger", "2024-01-03T09:30:00Z", enc=1, neutral=3, index=0.1, label="mixed"),
    row("e1", "Ledger", "2024-01-02", error="empty: no sentence"),
    row("a3", "Courier", "2024-02-10", scan=4, neutral=2, index=-0.5, label="pro-scanning"),
    row("a4", "Courier", "not a date", neutral=3, index=0.0, label="neutral coverage"),
    row("a5", None, None, scan=1, enc=1, index=0.0, label="mixed"),
    row("e2", "Wire", "2024-13-01", error="cannot read: bad bytes"),
]


def write_scores(folder, fmt, rows=ROWS):
    """Write ``rows`` as `stance score` would: JSONL with lists, CSV/Parquet with top sentences as JSON strings."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"articles.{fmt}"
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        return path
    flat = [{k: (json.dumps(v) if k.startswith("top_") and v is not None else v) for k, v in r.items()} for r in rows]
    frame = pd.DataFrame(flat, columns=COLUMNS)
    if fmt == "csv":
        frame.to_csv(path, index=False, encoding="utf-8-sig")  # with a BOM, as `stance score --bom` writes
    else:
        frame.to_parquet(path, index=False)
    return path


def by_group(view):
    return {r["group"]: r for r in view.table.to_dict(orient="records")}


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_group_statistics_are_exact_in_every_format(tmp_path, fmt):
    rows = read_article_rows(find_articles_file(write_scores(tmp_path, fmt).parent))
    view = corpus_view(rows, "outlet", seed=0)
    groups = by_group(view)
    assert list(view.table["group"]) == ["Courier", "Ledger", "Wire", UNKNOWN]  # alphabetical, unknown last
    ledger, courier, wire, unknown = groups["Ledger"], groups["Courier"], groups["Wire"], groups[UNKNOWN]
    assert (ledger["articles"], ledger["errors_skipped"], ledger["sentences"]) == (2, 1, 9)
    assert ledger["stance_index_mean"] == pytest.approx(0.25)
    assert ledger["engagement_mean"] == pytest.approx((4 / 5 + 1 / 4) / 2)
    # pooled over sentences (sum of counts / sum of sentences), not a mean of article shares
    assert ledger["sentence_share_pro-scanning"] == pytest.approx(1 / 9)
    assert ledger["sentence_share_pro-encryption"] == pytest.approx(4 / 9)
    assert ledger["sentence_share_neutral"] == pytest.approx(4 / 9)
    assert (ledger["article_share_pro-encryption"], ledger["article_share_mixed"]) == (0.5, 0.5)
    assert ledger["article_share_pro-scanning"] == ledger["article_share_neutral_coverage"] == 0.0
    assert (courier["articles"], courier["errors_skipped"], courier["sentences"]) == (2, 0, 9)
    assert courier["stance_index_mean"] == pytest.approx(-0.25)
    assert courier["sentence_share_pro-scanning"] == pytest.approx(4 / 9)
    assert courier["sentence_share_pro-encryption"] == 0.0
    assert (courier["article_share_pro-scanning"], courier["article_share_neutral_coverage"]) == (0.5, 0.5)
    # a group of error rows only: counted, no statistics
    assert (wire["articles"], wire["errors_skipped"], wire["sentences"]) == (0, 1, 0)
    assert math.isnan(wire["stance_index_mean"]) and math.isnan(wire["sentence_share_neutral"])
    # a missing outlet goes to "unknown"; one article has no spread
    assert (unknown["articles"], unknown["stance_index_mean"]) == (1, 0.0)
    assert math.isnan(unknown["stance_index_ci_low"]) and math.isnan(unknown["stance_index_ci_high"])  # one article
    assert set(view.table["bootstrap_seed"]) == {0} and set(view.table["bootstrap_resamples"]) == {2000}
    assert view.total_rows == len(ROWS) and view.models == ["baseline"]


def test_the_three_formats_give_the_same_table(tmp_path):
    tables = [corpus_view(read_article_rows(write_scores(tmp_path / fmt, fmt)), "date:month", seed=3).table
              for fmt in ("jsonl", "csv", "parquet")]
    pd.testing.assert_frame_equal(tables[0], tables[1])
    pd.testing.assert_frame_equal(tables[0], tables[2])


def test_date_buckets_and_unknown_dates(tmp_path):
    rows = read_article_rows(write_scores(tmp_path, "jsonl"))
    month = by_group(corpus_view(rows, "date:month"))
    assert list(month) == ["2024-01", "2024-02", UNKNOWN]
    assert (month["2024-01"]["articles"], month["2024-01"]["errors_skipped"]) == (2, 1)
    assert month["2024-02"]["articles"] == 1
    # "not a date" and a missing date are scored articles of the unknown group; "2024-13-01" is an error row
    assert (month[UNKNOWN]["articles"], month[UNKNOWN]["errors_skipped"]) == (2, 1)
    week = corpus_view(rows, "date:week")
    assert list(week.table["group"]) == ["2024-W01", "2024-W06", UNKNOWN]
    assert week.bucket_starts == {"2024-W01": date(2024, 1, 1), "2024-W06": date(2024, 2, 5)}
    day = by_group(corpus_view(rows, "date"))
    assert list(day) == ["2024-01-01", "2024-01-02", "2024-01-03", "2024-02-10", UNKNOWN]
    assert (day["2024-01-02"]["articles"], day["2024-01-02"]["errors_skipped"]) == (0, 1)
    assert day["2024-01-03"]["stance_index_mean"] == pytest.approx(0.1)  # a datetime counts on its written day


def test_date_parsing_and_buckets():
    assert parse_date("2024-06-20") == date(2024, 6, 20)
    assert parse_date(" 2024-06-20T23:59:59+02:00 ") == date(2024, 6, 20)
    assert parse_date("2024-06-20 10:00") == date(2024, 6, 20)
    assert parse_date(pd.Timestamp("2024-06-20 10:00")) == date(2024, 6, 20)
    for bad in ("2024-02-30", "20 June 2024", "2024-06-20Tnoon", "", None, float("nan"), 20240620, pd.NaT):
        assert parse_date(bad) is None, bad
    assert bucket_of(date(2024, 12, 30), "week") == ("2025-W01", date(2024, 12, 30))  # ISO week-year
    assert bucket_of(date(2021, 1, 3), "week") == ("2020-W53", date(2020, 12, 28))
    assert bucket_of(date(2024, 6, 20), "month") == ("2024-06", date(2024, 6, 1))
    assert bucket_of(date(2024, 6, 20), "year") == ("2024", date(2024, 1, 1))
    assert parse_grouping("outlet") == Grouping("outlet", None)
    assert parse_grouping("date") == Grouping("date", "day")
    assert parse_grouping("published:week") == Grouping("published", "week")
    for bad in ("", ":month", "date:fortnight"):
        with pytest.raises(ValueError):
            parse_grouping(bad)


def test_bootstrap_interval_contains_the_mean_and_is_deterministic():
    values = np.random.default_rng(1).normal(0.2, 0.3, size=40)
    mean, low, high = bootstrap_mean(values, seed=7)
    assert low < mean < high and mean == pytest.approx(values.mean())
    assert bootstrap_mean(values, seed=7) == (mean, low, high)
    assert bootstrap_mean(values, seed=8) != (mean, low, high)
    # the percentile interval of a mean is close to the normal one, mean +- 1.96 standard errors
    se = values.std(ddof=1) / np.sqrt(len(values))
    assert high - low == pytest.approx(2 * 1.96 * se, rel=0.15)
    # the method as documented: default_rng(seed), 2,000 resamples of the articles, 2.5th and 97.5th percentiles
    rng = np.random.default_rng(7)
    means = values[rng.integers(0, len(values), size=(2000, len(values)))].mean(axis=1)
    assert (low, high) == pytest.approx(tuple(np.quantile(means, [0.025, 0.975])), abs=1e-12)
    mean, low, high = bootstrap_mean([0.3], seed=0)
    assert mean == 0.3 and math.isnan(low) and math.isnan(high)  # one article: no interval
    assert all(math.isnan(v) for v in bootstrap_mean([], seed=0))
    with pytest.raises(ValueError):
        bootstrap_mean([0.1, float("nan")])


def test_bootstrap_in_chunks_equals_one_draw():
    values = np.linspace(-1, 1, 3001)  # large enough that the resamples are drawn in several chunks
    rng = np.random.default_rng(0)
    means = values[rng.integers(0, len(values), size=(2000, len(values)))].mean(axis=1)
    _, low, high = bootstrap_mean(values, seed=0)
    assert (low, high) == pytest.approx(tuple(np.quantile(means, [0.025, 0.975])), abs=1e-12)


def test_intervals_contain_the_means_and_depend_only_on_seed_and_group(tmp_path):
    rows = read_article_rows(write_scores(tmp_path, "jsonl"))
    first, again, other = (corpus_view(rows, "outlet", seed=s).table for s in (0, 0, 5))
    pd.testing.assert_frame_equal(first, again)
    scored = first[first["articles"] > 1]  # one article has no interval
    for stat in ("stance_index", "engagement"):
        assert (scored[f"{stat}_ci_low"] <= scored[f"{stat}_mean"]).all()
        assert (scored[f"{stat}_mean"] <= scored[f"{stat}_ci_high"]).all()
    ledger = first[first["group"] == "Ledger"].iloc[0]
    assert ledger["stance_index_ci_low"] < ledger["stance_index_ci_high"]
    assert set(other["bootstrap_seed"]) == {5}
    # one group's interval does not depend on which other groups exist
    only_ledger = corpus_view(rows[rows["outlet"] == "Ledger"], "outlet", seed=0).table
    assert only_ledger.iloc[0]["stance_index_ci_low"] == ledger["stance_index_ci_low"]


def test_bad_inputs_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a folder"):
        find_articles_file(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="no articles"):
        find_articles_file(tmp_path)
    write_scores(tmp_path, "jsonl")
    write_scores(tmp_path, "csv")
    with pytest.raises(ValueError, match="ambiguous"):
        find_articles_file(tmp_path)
    rows = read_article_rows(tmp_path / "articles.jsonl")
    with pytest.raises(ValueError, match="'region' is not a column.*outlet"):
        corpus_view(rows, "region")
    broken = rows.copy()
    broken.loc[0, "stance_index"] = float("nan")
    with pytest.raises(ValueError, match="'a1' has no stance_index"):
        corpus_view(broken, "outlet")
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "articles.jsonl").write_text(json.dumps({"doc_id": "x", "n_sentences": 1}) + "\n")
    with pytest.raises(ValueError, match="lacks the column"):
        read_article_rows(tmp_path / "old" / "articles.jsonl")
    (tmp_path / "old" / "articles.jsonl").write_text("{not json\n")
    with pytest.raises(ValueError, match="cannot read"):
        read_article_rows(tmp_path / "old" / "articles.jsonl")


def test_write_corpus_writes_every_output_and_refuses_to_overwrite(tmp_path):
    scores = write_scores(tmp_path / "scores", "parquet").parent
    out = tmp_path / "new" / "corpus"
    view = write_corpus(scores, "outlet", out, seed=2)
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES)
    table = pd.read_csv(out / "corpus.csv", keep_default_na=False)
    assert list(table["group"]) == ["Courier", "Ledger", "Wire", UNKNOWN]
    assert float(table.loc[1, "stance_index_mean"]) == pytest.approx(0.25)
    saved = json.loads((out / "corpus.json").read_text())
    assert saved["bootstrap_seed"] == 2 and saved["bootstrap_resamples"] == 2000 and saved["by"] == "outlet"
    assert saved["groups"][2]["stance_index_mean"] is None  # NaN written as null
    md = (out / "corpus.md").read_text()
    assert "seed 2)" in md and "bootstrap over articles, 2,000 resamples, percentile interval" in md
    assert re.search(r"^\| Ledger \| 2 \| 1 \| 9 \| \+0\.250 \[", md, re.M)
    for png in ("stance_index.png", "sentence_shares.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(FileExistsError, match="--force"):
        write_corpus(scores, "outlet", out)
    again = write_corpus(scores, "outlet", out, seed=2, force=True)
    pd.testing.assert_frame_equal(view.table, again.table)


def test_plots_over_time_and_by_field_do_not_touch_pyplot(tmp_path):
    scores = write_scores(tmp_path / "scores", "jsonl").parent
    code = (
        "import sys, matplotlib\n"
        # dict.items, not rcParams[...]: reading the backend would resolve it (and import pyplot)
        "before = dict(dict.items(matplotlib.rcParams))\n"
        "from stance.scoring.corpus import write_corpus\n"
        f"write_corpus({str(scores)!r}, 'date:week', {str(tmp_path / 'w')!r})\n"
        f"write_corpus({str(scores)!r}, 'outlet', {str(tmp_path / 'o')!r})\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
        "assert dict(dict.items(matplotlib.rcParams)) == before\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "w" / "stance_index.png").stat().st_size > 5000


def test_cli_corpus(tmp_path):
    scores = write_scores(tmp_path / "scores", "csv").parent
    out = tmp_path / "view"
    runner = CliRunner()
    result = runner.invoke(app, ["corpus", str(scores), "--by", "date:month", "--out", str(out), "--seed", "4"])
    assert result.exit_code == 0, result.output
    assert all((out / name).is_file() for name in OUTPUT_FILES)
    assert json.loads((out / "corpus.json").read_text())["bootstrap_seed"] == 4
    again = runner.invoke(app, ["corpus", str(scores), "--by", "date:month", "--out", str(out)])
    assert again.exit_code == 2 and "--force" in again.output and len(again.output.strip().splitlines()) == 1
    assert runner.invoke(app, ["corpus", str(scores), "--by", "outlet", "--out", str(out), "--force"]).exit_code == 0
    for args, reason in ((["corpus", str(tmp_path / "nope"), "--by", "outlet"], "not a folder"),
                         (["corpus", str(scores), "--by", "region"], "not a column"),
                         (["corpus", str(scores), "--by", "date:fortnight"], "unknown date bucket")):
        failed = runner.invoke(app, [*args, "--out", str(tmp_path / "other")])
        assert failed.exit_code == 2, failed.output
        assert reason in failed.output and failed.output.startswith("error:")
        assert len(failed.output.strip().splitlines()) == 1 and "Traceback" not in failed.output
    assert not (tmp_path / "other").exists()  # nothing written on a usage error


@pytest.mark.browser
def test_dashboard_renders_table_and_images_in_chromium(tmp_path):
    scores = write_scores(tmp_path / "scores", "jsonl").parent
    out = tmp_path / "view"
    write_corpus(scores, "outlet", out)
    page = (out / "corpus.html").read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*['"]?(https?:)?//""", page)  # self-contained
    # a copy of the page that records, after load, whether each image decoded (natural size)
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", "<script>window.addEventListener('load', () => { for (const img of "
                                  "document.images) img.dataset.size = img.naturalWidth + 'x' + img.naturalHeight; "
                                  "});</script></body>"), encoding="utf-8")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium is required: make test installs it (as root), or run apt-get install chromium"
    dom = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
         "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=120,
    ).stdout
    assert "<h1>Corpus view by outlet</h1>" in dom
    body = dom.split("<tbody>")[1].split("</tbody>")[0]
    assert body.count("<tr>") == 4 and "<td>Ledger</td><td>2</td><td>1</td><td>9</td>" in body
    sizes = re.findall(r'data-size="(\d+)x(\d+)"', dom)
    assert len(sizes) == 2 and all(int(w) > 300 and int(h) > 100 for w, h in sizes), sizes
    assert "Mean article stance index per group" in dom and "Pooled sentence shares per group" in dom
    assert "bootstrap over articles, 2,000 resamples, percentile interval" in dom


def png_size(data):
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_large_groupings_keep_plots_readable(tmp_path):
    from stance.scoring.corpus_render import MAX_PLOT_GROUPS, plot_sentence_shares, plot_stance_index

    many = [row(f"d{i}", f"Outlet {i % 45:02d}", (date(2024, 1, 1) + timedelta(days=i)).isoformat(),
                scan=i % 3, enc=1, neutral=2, index=(i % 5 - 2) / 5, label="mixed") for i in range(75)]
    many += [row("x", "Outlet 07", "2024-01-08", enc=2, neutral=1, index=0.5, label="pro-encryption")]
    rows = read_article_rows(write_scores(tmp_path, "jsonl", many))
    full = corpus_view(rows, "outlet")
    cut = corpus_view(rows[rows["outlet"] <= f"Outlet {MAX_PLOT_GROUPS - 1:02d}"], "outlet")
    assert len(full.table) == 45 and len(cut.table) == MAX_PLOT_GROUPS
    # the plots of 45 groups show 30 (as tall as the plot of 30 groups), the table keeps all 45
    assert png_size(plot_stance_index(full))[1] == png_size(plot_stance_index(cut))[1]
    assert png_size(plot_sentence_shares(full))[1] == png_size(plot_sentence_shares(cut))[1]
    days = corpus_view(rows, "date")
    assert len(days.table) == 75
    # more date buckets than bars fit: shares become areas over time, a plot of fixed width
    width, _ = png_size(plot_sentence_shares(days))
    assert width < 1000 and png_size(plot_stance_index(days))[0] < 1000
