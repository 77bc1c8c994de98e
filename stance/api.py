"""The prediction API: ``predict``, ``score_article``, ``load``, and the model cache."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from stance import paths
from stance.aggregate import summarise
from stance.context import segment_with_context
from stance.labels import LABELS
from stance.models import ModelNotFoundError, StanceModel, load_model
from stance.text import has_visible_text

NAMED_MODELS = ("baseline", "transformer")
DEFAULT_FILE = "DEFAULT"


@dataclass(frozen=True)
class Prediction:
    """One prediction: ``label``, ``scores`` (a probability per label, summing to 1), ``model``.

    ``error`` is set (and ``label`` is ``None``) only for batch items that could not be scored.
    """

    label: str | None
    scores: dict[str, float]
    model: str
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "scores": dict(self.scores), "model": self.model, "error": self.error}


def default_model_name() -> str:
    """The model the evaluation's selection rule chose (``models/DEFAULT``), else ``baseline``."""
    marker = paths.models_dir() / DEFAULT_FILE
    return marker.read_text().strip() if marker.exists() else "baseline"


def _resolve(name_or_path: str | Path | None) -> Path:
    name = default_model_name() if name_or_path is None else name_or_path
    if isinstance(name, str) and name in NAMED_MODELS:
        return paths.models_dir() / name
    path = Path(name)
    if not path.exists():
        raise ModelNotFoundError(
            f"model {str(name)!r} is neither {' nor '.join(NAMED_MODELS)} nor an existing folder"
        )
    return path


@lru_cache(maxsize=8)
def _load_cached(path: Path) -> StanceModel:
    return load_model(path)


@lru_cache(maxsize=4)
def _load_quantized(path: Path) -> StanceModel:
    model = _load_cached(path)
    make_int8 = getattr(model, "quantized", None)
    if make_int8 is None:
        raise ValueError(f"{path} holds a {model.family!r} model; only transformer models can be quantised")
    return make_int8()


def load(name_or_path: str | Path | None = None, quantize: bool = False) -> StanceModel:
    """The model ``"baseline"``, ``"transformer"``, a saved-model folder, or the default (``None``).

    Loaded once and cached. ``quantize=True`` gives an int8 dynamically quantised copy of a
    transformer model (opt-in; see the README's Performance section for its speed and macro-F1
    cost) and raises ``ValueError`` for other families. Raises
    :class:`~stance.models.ModelNotFoundError` naming the command that builds a missing model.
    """
    path = _resolve(name_or_path).resolve()
    return _load_quantized(path) if quantize else _load_cached(path)


def model_label(name_or_path: str | Path | None) -> str:
    path = _resolve(name_or_path)
    return path.name


def _check_text(text: object, position: int | None) -> str:
    where = "text" if position is None else f"text at position {position}"
    if not isinstance(text, str):
        raise TypeError(f"{where} is {type(text).__name__}, not str")
    if not has_visible_text(text):
        raise ValueError(f"{where} is empty, whitespace or invisible characters only")
    return text


def predict_texts(
    texts: list[str], model: str | Path | None = None, errors: str = "raise", quantize: bool = False
) -> list[Prediction]:
    """Predict a list; ``errors="mark"`` turns bad items into error predictions instead of raising."""
    if errors not in {"raise", "mark"}:
        raise ValueError(f"errors must be 'raise' or 'mark', got {errors!r}")
    name = model_label(model)
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
    proba = load(model, quantize).predict_proba([texts[i] for i in good]) if good else np.zeros((0, len(LABELS)))
    rows = {i: proba[k] for k, i in enumerate(good)}
    out = []
    for position in range(len(texts)):
        if position in failures:
            out.append(Prediction(None, {label: float("nan") for label in LABELS}, name, failures[position]))
        else:
            scores = {label: float(p) for label, p in zip(LABELS, rows[position])}
            out.append(Prediction(LABELS[int(np.argmax(rows[position]))], scores, name))
    return out


def predict(
    text: str | Iterable[str], model: str | Path | None = None, errors: str = "raise", quantize: bool = False
) -> Prediction | list[Prediction]:
    """Stance of one text (a ``str`` -> one :class:`Prediction`) or of many (-> a list, same order).

    ``model``: ``"baseline"``, ``"transformer"``, a saved-model folder, or ``None`` for the
    project's best model by the evaluation. Raises ``TypeError`` (naming the position) for a
    non-string item, ``ValueError`` for empty text, :class:`~stance.models.ModelNotFoundError`
    for a missing model. With ``errors="mark"``, bad items in a list become predictions with
    ``error`` set instead. Long text is never truncated: the transformer scores it in chunks.
    ``quantize=True`` uses the int8 copy of a transformer model (see :func:`load`).
    """
    if isinstance(text, str):
        return predict_texts([_check_text(text, None)], model, quantize=quantize)[0]
    if text is None or not isinstance(text, Iterable):
        raise TypeError(f"predict() needs a str or an iterable of str, got {type(text).__name__}")
    return predict_texts(list(text), model, errors, quantize)


@dataclass
class ArticleScore:
    """Sentence predictions with offsets, and the article summary."""

    sentences: list[dict[str, Any]]
    summary: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"sentences": self.sentences, "summary": self.summary}


def score_sentences(text: str, proba: np.ndarray, spans: list, model_name: str, top_k: int = 3) -> ArticleScore:
    """Build an :class:`ArticleScore` from segmented sentences and their probabilities."""
    sentences = [
        {
            "index": i,
            "start": s.start,
            "end": s.end,
            "text": s.text,
            "label": LABELS[int(np.argmax(p))],
            "scores": {label: float(v) for label, v in zip(LABELS, p)},
        }
        for i, (s, p) in enumerate(zip(spans, proba))
    ]
    summary = summarise(proba)
    summary["model"] = model_name
    for side in ("pro-scanning", "pro-encryption"):
        mine = [s for s in sentences if s["label"] == side]
        mine.sort(key=lambda s: -s["scores"][side])
        summary[f"top_{side}"] = [
            {"index": s["index"], "text": s["text"], "p": s["scores"][side]} for s in mine[:top_k]
        ]
    return ArticleScore(sentences, summary)


def score_article(text: str, model: str | Path | None = None, top_k: int = 3) -> ArticleScore:
    """Split an article into sentences (the dataset's segmenter), predict each, summarise.

    The summary holds ``n_sentences``, ``n_<label>``, ``share_<label>``, ``mean_p_<label>``
    and ``net_stance`` = (pro-encryption - pro-scanning) / (pro-encryption + pro-scanning)
    sentence counts, in [-1, 1] (pro-scanning negative, 0 when no sentence takes a side),
    plus the ``top_k`` most confident sentences of each side. Raises ``TypeError`` for a
    non-string and ``ValueError`` for empty text.
    """
    _check_text(text, None)
    spans, contexts = segment_with_context(text)
    # each sentence is read with its headline, list lead-in and previous sentence (models built
    # with use_context use them; the others ignore them)
    proba = load(model).predict_proba([s.text for s in spans], contexts)
    return score_sentences(text, proba, spans, model_label(model), top_k)
