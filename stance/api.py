"""The prediction API: ``predict``, ``score_article`` and ``load`` (models resolved by :mod:`stance.models.store`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from stance.labels import LABELS
from stance.models import StanceModel, store
from stance.scoring.kernel import PREDICT_BATCH, Kernel, ScoredArticle
from stance.scoring.readers import Article, clean_text, one_line
from stance.text import has_visible_text


@dataclass(frozen=True)
class Prediction:
    """One prediction: ``label``, ``scores`` (a probability per label, summing to 1), ``model``.

    ``error`` is set (and ``label`` is ``None``) only for batch items that could not be scored.
    """

    label: str | None
    scores: dict[str, float]
    model: str
    error: str | None = None
    explanation: list[tuple[str, float]] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"label": self.label, "scores": dict(self.scores), "model": self.model, "error": self.error}
        if self.explanation is not None:
            out["explanation"] = [{"span": span, "weight": weight} for span, weight in self.explanation]
        return out


def default_model_name() -> str:
    """The default model's name (the store's ``DEFAULT`` marker, else the packaged default)."""
    return store.default_name()


def load(name_or_path: str | Path | None = None, backend: str | None = None) -> StanceModel:
    """A saved model by name (``"baseline"``, ``"transformer"``...), folder, or the default (``None``).

    Names resolve through the model store (:mod:`stance.models.store`: an explicit folder,
    ``$STANCE_HOME`` or the user data folder, then the copy packaged with the library). Loaded
    once and cached. ``backend``: the inference backend of a model with a neural network
    (``"torch-fp32"``, ``"torch-int8"``, ``"onnx-fp32"``, ``"onnx-int8"``; ``None``: the backend
    the project's measurement chose, see the README's Performance section); a model without one
    ignores it. Raises ``ValueError`` for a backend the model cannot run and
    :class:`~stance.models.ModelNotFoundError` naming the command that builds a missing model.
    """
    return _loaded(name_or_path, backend)[0]


def _loaded(name_or_path: str | Path | None, backend: str | None = None) -> tuple[StanceModel, store.ModelRef]:
    # one resolve per call: resolving hashes the folder's file stamps and reads its config
    return store.load(name_or_path, backend)


def model_label(name_or_path: str | Path | None) -> str:
    """The name rows and predictions carry for a model (its store name or folder name)."""
    return store.resolve(name_or_path).name


def kernel(model: str | Path | None = None, batch_size: int = PREDICT_BATCH, explain: int = 0,
           backend: str | None = None) -> Kernel:
    """The scoring kernel (:class:`stance.scoring.kernel.Kernel`) for a model name or folder."""
    loaded, ref = store.load(model, backend)
    return Kernel(loaded, ref.name, ref.sha256, batch_size, explain=explain)


def _check_text(text: object, position: int | None) -> str:
    where = "text" if position is None else f"text at position {position}"
    if not isinstance(text, str):
        raise TypeError(f"{where} is {type(text).__name__}, not str")
    if not has_visible_text(text):
        raise ValueError(f"{where} is empty, whitespace or invisible characters only")
    return text


def predict_texts(
    texts: list[str], model: str | Path | None = None, errors: str = "raise", backend: str | None = None,
    explain: int = 0,
) -> list[Prediction]:
    """Predict a list; ``errors="mark"`` turns bad items into error predictions instead of raising.

    A bad item is a non-string, empty text, or a text the model fails on (found by predicting
    the items one by one after a failed batch); with ``errors="mark"`` it never raises.
    """
    if errors not in {"raise", "mark"}:
        raise ValueError(f"errors must be 'raise' or 'mark', got {errors!r}")
    loaded, ref = _loaded(model, backend)
    name = ref.name
    good: list[int] = []
    failures: dict[int, str] = {}
    for position, text in enumerate(texts):
        try:
            _check_text(text, position)
            good.append(position)
        except (TypeError, ValueError) as problem:
            if errors == "raise":
                raise
            failures[position] = str(problem)
    rows: dict[int, np.ndarray] = {}
    try:
        proba = loaded.predict_proba([texts[i] for i in good]) if good else np.zeros((0, len(LABELS)))
        rows = {i: proba[k] for k, i in enumerate(good)}
    except Exception:
        # narrow the failure to the item(s) that cause it: each is predicted alone
        for position in good:
            try:
                rows[position] = loaded.predict_proba([texts[position]])[0]
            except Exception as problem:
                if errors == "raise":
                    raise ValueError(f"text at position {position} could not be scored: {one_line(problem)}") from problem
                failures[position] = f"prediction failed: {one_line(problem)}"
    out = []
    for position in range(len(texts)):
        if position in failures:
            out.append(Prediction(None, {label: float("nan") for label in LABELS}, name, failures[position]))
        else:
            scores = {label: float(p) for label, p in zip(LABELS, rows[position])}
            out.append(Prediction(LABELS[int(np.argmax(rows[position]))], scores, name))
    if explain:
        scored = [i for i, p in enumerate(out) if p.error is None]
        found = loaded.explain([texts[i] for i in scored], k=explain) if scored else []
        for i, pairs in zip(scored, found):
            out[i] = replace(out[i], explanation=[(span, float(weight)) for span, weight in pairs])
    return out


def predict(
    text: str | Iterable[str], model: str | Path | None = None, errors: str = "raise", backend: str | None = None,
    explain: int = 0,
) -> Prediction | list[Prediction]:
    """Stance of one text (a ``str`` -> one :class:`Prediction`) or of many (-> a list, same order).

    ``model``: ``"baseline"``, ``"transformer"``, a saved-model folder, or ``None`` for the
    project's best model by the evaluation. Raises ``TypeError`` (naming the position) for a
    non-string item, ``ValueError`` for empty text, :class:`~stance.models.ModelNotFoundError`
    for a missing model. With ``errors="mark"``, bad items in a list become predictions with
    ``error`` set instead. Long text is never truncated: the transformer scores it in chunks.
    ``backend``: the inference backend (see :func:`load`).
    ``explain=k`` (k > 0) sets each prediction's ``explanation``: up to k ``(word or phrase,
    weight)`` pairs that pushed its label, largest first (see :func:`score_article` for the unit
    and cost).
    """
    if isinstance(text, str):
        return predict_texts([_check_text(text, None)], model, backend=backend, explain=explain)[0]
    if text is None or not isinstance(text, Iterable):
        raise TypeError(f"predict() needs a str or an iterable of str, got {type(text).__name__}")
    return predict_texts(list(text), model, errors, backend, explain)


class ArticleError(ValueError):
    """An article that could not be scored; the message is the error row's reason."""


@dataclass
class ArticleScore:
    """Sentence predictions with offsets, and the article summary."""

    sentences: list[dict[str, Any]]
    summary: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"sentences": self.sentences, "summary": self.summary}


def article_score(scored: ScoredArticle, kernel: Kernel) -> ArticleScore:
    """An :class:`ArticleScore` from the kernel's result for one article (the kernel's rows, reshaped)."""
    rows = kernel.sentence_rows(scored)
    sentences = [
        {"index": row["sentence_index"], "start": row["start"], "end": row["end"], "text": row["text"],
         "label": row["label"], "scores": {label: row[f"p_{label}"] for label in LABELS},
         **({"explanation": row["explanation"]} if "explanation" in row else {})}
        for row in rows
    ]
    summary = {k: v for k, v in kernel.article_row(scored, rows).items()
               if k not in {"source", "doc_id", "warnings", "error"}}
    return ArticleScore(sentences, summary)


def score_article(text: str, model: str | Path | None = None, explain: int = 0,
                  backend: str | None = None) -> ArticleScore:
    """Split an article into sentences (the dataset's segmenter), predict each, summarise.

    Runs the one scoring kernel (:mod:`stance.scoring.kernel`) that ``stance score`` runs, on
    ``text`` cleaned by the same rules as its inputs (lone surrogates -> U+FFFD, universal
    newlines; offsets count code points of the cleaned text). Each sentence is read with its
    headline, list lead-in and previous sentence (models built with context use them).
    ``sentences``: one dict per sentence (``index``, ``start``, ``end``, ``text``, ``label``,
    ``scores``). ``summary``: the article row of ``stance score`` without its input columns:
    counts, shares and mean probabilities per label, ``engagement``, ``balance``,
    ``stance_index`` with 95 % bootstrap intervals and ``article_label`` (defined in
    :func:`stance.aggregate.summarise`), ``net_stance`` (alias of ``balance``, 0.0 when no
    sentence takes a side), ``top_pro-encryption`` / ``top_pro-scanning`` (the three most
    confident sentences of each side), and the model's name and sha256.
    ``explain=k`` (k > 0) adds to every sentence its ``explanation``: up to k words or phrases that
    pushed its label, ``{span, weight, start, end}`` (offsets in the sentence; the weight's unit is
    ``stance.load(model).explanation_unit()``: exact logit-margin shares for the TF-IDF model,
    leave-one-word-out occlusion, about one extra prediction per word, for the others).
    ``backend``: the inference backend (see :func:`load`).
    Raises ``TypeError`` for a non-string, ``ValueError`` for empty text, and
    :class:`ArticleError` (a ``ValueError``) with the error row's reason when scoring fails.
    """
    _check_text(text, None)
    cleaned, warnings = clean_text(text)
    scoring = kernel(model, explain=explain, backend=backend)
    scored = scoring.score([Article("<text>", "<text>", cleaned, warnings="; ".join(warnings) or None)])[0]
    if scored.error is not None:
        raise ArticleError(scored.error)
    return article_score(scored, scoring)
