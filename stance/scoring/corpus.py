"""The corpus view: ``stance score`` article rows grouped by a metadata field or a date bucket.

Per group it reports how many articles were scored (error rows are skipped and counted), the mean
article stance index and mean engagement, each with a 95 % percentile bootstrap interval over the
group's articles, the pooled sentence shares per label, and the share of articles per article
label. :func:`write_corpus` writes the table (CSV, Markdown, JSON), two PNG plots and one
self-contained HTML dashboard (:mod:`stance.scoring.corpus_render`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stance.aggregate import ARTICLE_LABELS
from stance.labels import LABELS

RESAMPLES = 2000
LEVEL = 0.95
UNKNOWN = "unknown"
BUCKETS = ("day", "week", "month", "year")
FORMATS = ("jsonl", "csv", "parquet")
OUTPUT_FILES = ("corpus.csv", "corpus.md", "corpus.json", "stance_index.png", "sentence_shares.png", "corpus.html")
# numeric article columns the view reads; everything else (metadata) is read as text
NUMERIC = ("n_sentences", *[f"n_{label}" for label in LABELS], "stance_index", "engagement")
REQUIRED = ("doc_id", *NUMERIC, "article_label", "error")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")
# bound on resample-by-article index matrices held at once (elements), so memory stays flat
_CHUNK_ELEMENTS = 4_000_000


@dataclass(frozen=True)
class Grouping:
    """What ``--by`` asked for: a column, and a date bucket (``None`` for plain values).

    ``"outlet"`` -> ``Grouping("outlet", None)``; ``"date"`` -> ``Grouping("date", "day")``;
    ``"date:week"`` -> ``Grouping("date", "week")``; ``"published:month"`` -> ``Grouping("published", "month")``.
    """

    column: str
    bucket: str | None = None

    @property
    def is_date(self) -> bool:
        return self.bucket is not None

    def describe(self) -> str:
        """Human wording, e.g. ``"date (by month)"`` or ``"outlet"``."""
        return f"{self.column} (by {self.bucket})" if self.bucket else self.column


def parse_grouping(by: str) -> Grouping:
    """Parse ``FIELD``, ``date`` or ``FIELD:day|week|month|year``; raises ``ValueError`` for an
    empty field or an unknown bucket."""
    column, _, bucket = by.strip().partition(":")
    column = column.strip()
    if not column:
        raise ValueError(f"--by needs a field name, got {by!r}")
    if bucket:
        if bucket not in BUCKETS:
            raise ValueError(f"unknown date bucket {bucket!r} in --by {by!r}; use one of {', '.join(BUCKETS)}")
        return Grouping(column, bucket)
    return Grouping(column, "day" if column == "date" else None)


def find_articles_file(scores_dir: str | Path) -> Path:
    """The ``articles.jsonl|csv|parquet`` file of a ``stance score`` output folder (or that file itself).

    Raises ``FileNotFoundError`` when the folder or the file is missing, and ``ValueError`` when
    more than one format is present (which one to read would be a guess).
    """
    folder = Path(scores_dir)
    if folder.is_file() and folder.name in {f"articles.{fmt}" for fmt in FORMATS}:
        return folder
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder (expected the output folder of 'stance score')")
    found = [folder / f"articles.{fmt}" for fmt in FORMATS if (folder / f"articles.{fmt}").is_file()]
    if not found:
        raise FileNotFoundError(f"{folder} holds no articles.jsonl, articles.csv or articles.parquet")
    if len(found) > 1:
        raise ValueError(f"{folder} holds {', '.join(p.name for p in found)}; keep one (which to read is ambiguous)")
    return found[0]


def read_article_rows(path: str | Path) -> pd.DataFrame:
    """The article rows of one ``articles.<fmt>`` file, one DataFrame row per article.

    Metadata columns stay as written (text in CSV; values as stored in JSONL and Parquet); the
    counts, ``stance_index`` and ``engagement`` are floats (NaN when empty). Raises ``ValueError``
    for an unreadable file or one that lacks a column the view needs.
    """
    path = Path(path)
    try:
        if path.suffix == ".jsonl":
            with path.open(encoding="utf-8") as lines:
                # the json module, not pandas' reader: it would turn ids such as "007" into numbers
                frame = pd.DataFrame([json.loads(line) for line in lines if line.strip()])
        elif path.suffix == ".csv":
            # utf-8-sig: score output written with --bom starts with a byte-order mark
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
            frame = frame.where(frame != "", None)  # an empty cell is a missing value
        elif path.suffix == ".parquet":
            frame = pd.read_parquet(path)
        else:
            raise ValueError(f"{path.name}: not a jsonl, csv or parquet file")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, pd.errors.ParserError) as problem:
        raise ValueError(f"cannot read {path}: {problem}") from problem
    except Exception as problem:  # pyarrow raises its own error types for a broken Parquet file
        if type(problem).__module__.startswith("pyarrow"):
            raise ValueError(f"cannot read {path}: {problem}") from problem
        raise
    if not len(frame):
        raise ValueError(f"{path} holds no article rows")
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise ValueError(f"{path} lacks the column(s) {', '.join(missing)}; is it 'stance score' article output?")
    for column in NUMERIC:
        try:
            frame[column] = pd.to_numeric(frame[column], errors="raise").astype(float)
        except (ValueError, TypeError) as problem:
            raise ValueError(f"{path}: column {column} is not numeric ({problem})") from problem
    return frame


def parse_date(value: Any) -> date | None:
    """The calendar date of an ISO 8601 value (``2024-06-20``, ``2024-06-20T10:00:00Z``, a
    ``date``/``datetime``), or ``None`` when it is missing or not such a date. The date is taken
    as written (no time-zone conversion)."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or not _ISO_DATE.match(value.strip()):
        return None
    text = value.strip()
    try:
        day = date.fromisoformat(text[:10])
        if len(text) > 10:  # the rest must be a valid ISO time, else the whole value is bad
            datetime.fromisoformat(text[:10] + "T" + text[11:].replace("Z", "+00:00"))
    except ValueError:
        return None
    return day


def bucket_of(day: date, bucket: str) -> tuple[str, date]:
    """The bucket key and its first day: ``day`` -> ("2024-06-20", day); ``week`` -> ISO week
    ("2024-W25", its Monday); ``month`` -> ("2024-06", the 1st); ``year`` -> ("2024", 1 January)."""
    if bucket == "day":
        return day.isoformat(), day
    if bucket == "week":
        year, week, weekday = day.isocalendar()
        return f"{year}-W{week:02d}", day - timedelta(days=weekday - 1)
    if bucket == "month":
        return f"{day.year}-{day.month:02d}", day.replace(day=1)
    if bucket == "year":
        return f"{day.year}", date(day.year, 1, 1)
    raise ValueError(f"unknown date bucket {bucket!r}")


def group_keys(rows: pd.DataFrame, grouping: Grouping) -> tuple[list[str], dict[str, date]]:
    """The group of every row, and the first day of every date bucket.

    A missing value (and, for dates, a value that is not an ISO date) goes to :data:`UNKNOWN`.
    Raises ``ValueError`` when the column is not in the rows, naming the columns that are.
    """
    if grouping.column not in rows.columns:
        from stance.scoring.kernel import ARTICLE_COLUMNS

        kept = [c for c in rows.columns if c not in ARTICLE_COLUMNS]
        raise ValueError(f"field {grouping.column!r} is not a column of the article rows (kept fields: "
                         f"{', '.join(map(str, kept)) or 'none'}); score the inputs again with "
                         f"`stance score ... --keep-fields {grouping.column}`")
    keys: list[str] = []
    starts: dict[str, date] = {}
    for value in rows[grouping.column].tolist():
        if grouping.bucket is not None:
            day = parse_date(value)
            if day is None:
                keys.append(UNKNOWN)
                continue
            key, start = bucket_of(day, grouping.bucket)
            starts[key] = start
            keys.append(key)
        elif value is None or (isinstance(value, float) and math.isnan(value)) or str(value).strip() == "":
            keys.append(UNKNOWN)
        else:
            keys.append(str(value).strip())
    return keys, starts


def bootstrap_mean(values: Sequence[float] | np.ndarray, seed: int = 0, resamples: int = RESAMPLES,
                   level: float = LEVEL) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean of ``values`` and its percentile bootstrap interval.

    Resamples the values (articles) with replacement ``resamples`` times with
    ``numpy.random.default_rng(seed)`` and takes the ``(1 - level) / 2`` and ``(1 + level) / 2``
    quantiles of the resampled means. One value gives ``(v, nan, nan)`` (a single article has no
    interval, not a zero-width one); none gives NaNs. The same
    ``seed`` and values give the same interval.
    """
    x = np.asarray(values, dtype=float)
    if x.ndim != 1 or not np.isfinite(x).all():
        raise ValueError("bootstrap_mean needs a flat array of finite values")
    if resamples < 1 or not 0 < level < 1:
        raise ValueError(f"need resamples >= 1 and 0 < level < 1, got {resamples} and {level}")
    if len(x) == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if len(x) == 1:
        return mean, math.nan, math.nan
    rng = np.random.default_rng(seed)
    per_chunk = max(1, _CHUNK_ELEMENTS // len(x))
    means = np.empty(resamples)
    for start in range(0, resamples, per_chunk):
        stop = min(resamples, start + per_chunk)
        means[start:stop] = x[rng.integers(0, len(x), size=(stop - start, len(x)))].mean(axis=1)
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    # a mean of identical values can differ from them in the last bit; the interval holds the mean
    return mean, float(min(low, mean)), float(max(high, mean))


@dataclass
class CorpusView:
    """The grouped statistics and how they were made.

    ``table`` has one row per group (see :func:`corpus_view` for its columns), groups in order:
    chronological for dates, alphabetical (case-insensitive) otherwise, :data:`UNKNOWN` last.
    ``bucket_starts`` maps a date bucket to its first day.
    """

    table: pd.DataFrame
    grouping: Grouping
    seed: int
    resamples: int
    source: str
    total_rows: int
    models: list[str] = field(default_factory=list)
    bucket_starts: dict[str, date] = field(default_factory=dict)


def _group_order(keys: set[str], grouping: Grouping) -> list[str]:
    known = sorted(keys - {UNKNOWN}, key=lambda k: (k.casefold(), k))
    return known + ([UNKNOWN] if UNKNOWN in keys else [])


def corpus_view(rows: pd.DataFrame, by: str | Grouping, seed: int = 0, resamples: int = RESAMPLES,
                source: str = "") -> CorpusView:
    """Group article rows and summarise each group.

    Table columns: ``group``; ``articles`` (scored articles), ``errors_skipped`` (error rows, not
    otherwise used), ``sentences`` (sum of ``n_sentences``); ``stance_index_mean`` with
    ``stance_index_ci_low/high`` and ``engagement_mean`` with ``engagement_ci_low/high`` (means
    over articles, each article weighted once; 95 % percentile bootstrap over articles, see
    :func:`bootstrap_mean`); ``sentence_share_<label>`` (sum of ``n_<label>`` / sum of
    ``n_sentences``, in [0, 1]); ``article_share_<label>`` per article label (spaces as ``_``);
    ``bootstrap_seed`` and ``bootstrap_resamples``. A group of error rows only has NaN means and shares.
    Each group's bootstrap starts from ``default_rng(seed)``, so a group's interval does not depend
    on the other groups. Raises ``ValueError`` for a missing field, a scored row without a stance
    index or engagement, or an unknown article label.
    """
    grouping = parse_grouping(by) if isinstance(by, str) else by
    keys, starts = group_keys(rows, grouping)
    errors = rows["error"].map(lambda e: e is not None and not (isinstance(e, float) and math.isnan(e))
                               and str(e) != "").to_numpy(bool) if len(rows) else np.zeros(0, bool)
    scored = rows[~errors]
    for column in ("stance_index", "engagement"):
        bad = scored[scored[column].isna()] if len(scored) else scored
        if len(bad):
            raise ValueError(f"article {bad['doc_id'].iloc[0]!r} has no {column} but no error either")
    labels = set(scored["article_label"].dropna().astype(str)) if len(scored) else set()
    if labels - set(ARTICLE_LABELS):
        raise ValueError(f"unknown article_label {sorted(labels - set(ARTICLE_LABELS))}; known: {list(ARTICLE_LABELS)}")
    key_array = np.asarray(keys, dtype=object)
    records = []
    for key in _group_order(set(keys), grouping):
        in_group = key_array == key
        group = rows[in_group & ~errors]
        n = len(group)
        stance = bootstrap_mean(group["stance_index"].to_numpy(float), seed, resamples)
        engagement = bootstrap_mean(group["engagement"].to_numpy(float), seed, resamples)
        sentences = float(group["n_sentences"].sum()) if n else 0.0
        record: dict[str, Any] = {
            "group": key, "articles": n, "errors_skipped": int((in_group & errors).sum()), "sentences": int(sentences),
            "stance_index_mean": stance[0], "stance_index_ci_low": stance[1], "stance_index_ci_high": stance[2],
            "engagement_mean": engagement[0], "engagement_ci_low": engagement[1], "engagement_ci_high": engagement[2],
        }
        for label in LABELS:
            record[f"sentence_share_{label}"] = float(group[f"n_{label}"].sum() / sentences) if sentences else math.nan
        counts = group["article_label"].astype(str).value_counts() if n else pd.Series(dtype=int)
        for label in ARTICLE_LABELS:
            record[f"article_share_{label.replace(' ', '_')}"] = float(counts.get(label, 0) / n) if n else math.nan
        record.update(bootstrap_seed=seed, bootstrap_resamples=resamples)
        records.append(record)
    columns = ["group", "articles", "errors_skipped", "sentences", "stance_index_mean", "stance_index_ci_low",
               "stance_index_ci_high", "engagement_mean", "engagement_ci_low", "engagement_ci_high",
               *[f"sentence_share_{label}" for label in LABELS],
               *[f"article_share_{label.replace(' ', '_')}" for label in ARTICLE_LABELS],
               "bootstrap_seed", "bootstrap_resamples"]
    models = sorted(set(scored["model"].dropna().astype(str))) if "model" in rows.columns and len(scored) else []
    return CorpusView(pd.DataFrame(records, columns=columns), grouping, seed, resamples, source, len(rows),
                      models, {k: v for k, v in starts.items() if k in set(keys)})


def check_outputs(out_dir: str | Path, force: bool) -> list[Path]:
    """The output paths in ``out_dir``; raises ``FileExistsError`` naming the first existing one
    unless ``force``, and ``NotADirectoryError`` when ``out_dir`` is a file."""
    folder = Path(out_dir)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{folder} exists and is not a folder")
    paths = [folder / name for name in OUTPUT_FILES]
    existing = [p for p in paths if p.exists()]
    if existing and not force:
        raise FileExistsError(f"{existing[0]} exists; pass --force to overwrite")
    return paths


def write_corpus(scores_dir: str | Path, by: str, out_dir: str | Path, seed: int = 0, force: bool = False,
                 resamples: int = RESAMPLES) -> CorpusView:
    """Read a ``stance score`` output folder and write the corpus view into ``out_dir``.

    Writes ``corpus.csv`` and ``corpus.md`` (the table), ``corpus.json`` (the settings and the
    table), ``stance_index.png``, ``sentence_shares.png`` and ``corpus.html`` (the dashboard, with
    the PNGs embedded). ``out_dir`` is created if missing. Raises ``FileNotFoundError`` (no scores),
    ``ValueError`` (bad rows or field), ``FileExistsError`` (existing outputs without ``force``),
    all before anything is written.
    """
    from stance.scoring.corpus_render import markdown_table, plot_sentence_shares, plot_stance_index, render_dashboard

    paths = check_outputs(out_dir, force)
    articles = find_articles_file(scores_dir)
    view = corpus_view(read_article_rows(articles), by, seed, resamples, source=str(articles))
    pngs = {"stance_index": plot_stance_index(view), "sentence_shares": plot_sentence_shares(view)}
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    csv, md, js, stance_png, shares_png, page = paths
    view.table.to_csv(csv, index=False)
    md.write_text(markdown_table(view), encoding="utf-8")
    js.write_text(json.dumps(_settings(view) | {"groups": _records(view.table)}, indent=1, ensure_ascii=False) + "\n",
                  encoding="utf-8")
    stance_png.write_bytes(pngs["stance_index"])
    shares_png.write_bytes(pngs["sentence_shares"])
    page.write_text(render_dashboard(view, pngs), encoding="utf-8")
    return view


def _settings(view: CorpusView) -> dict[str, Any]:
    return {"source": view.source, "by": view.grouping.describe(), "rows": view.total_rows, "models": view.models,
            "interval": f"{LEVEL:.0%} percentile bootstrap over articles, {view.resamples} resamples, "
                        f"numpy default_rng(seed)",
            "bootstrap_seed": view.seed, "bootstrap_resamples": view.resamples}


def _plain(value: Any) -> Any:
    # NaN is not JSON (a group of error rows only has null means and shares); numpy scalars are not either
    if isinstance(value, np.generic):
        value = value.item()
    return None if isinstance(value, float) and math.isnan(value) else value


def _records(table: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: _plain(v) for k, v in row.items()} for row in table.to_dict(orient="records")]
