"""A probability-averaging ensemble of other stance models (soft voting).

Each member is any family of :data:`stance.models.FAMILIES` with its own parameters; ``fit`` fits
every member on the same rows (contexts included), ``predict_proba`` is the weighted mean of the
members' probabilities (scikit-learn's ``VotingClassifier(voting="soft")`` does the same for
estimators). Members are saved in ``member_<k>/`` folders of their own format: no pickle.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from stance.labels import LABELS
from stance.models.base import StanceModel, check_texts

MEMBER_DIR = "member_{}"


class EnsembleModel(StanceModel):
    """Soft voting over ``members``: a list of ``{"family": ..., "params": {...}}``.

    ``weights``: one non-negative weight per member (equal when ``None``). Raises ``ValueError``
    for no members, an unknown family or a weight count that does not match.
    """

    family = "ensemble"

    def __init__(self, members: Sequence[dict[str, Any]] = (), weights: Sequence[float] | None = None,
                 seed: int = 0) -> None:
        super().__init__(seed)
        from stance.models import FAMILIES

        if not members:
            raise ValueError("an ensemble needs at least one member")
        for member in members:
            if member.get("family") not in FAMILIES or member.get("family") == self.family:
                raise ValueError(f"unknown or nested member family {member.get('family')!r}")
        if weights is not None and (len(weights) != len(members) or min(weights) < 0 or sum(weights) <= 0):
            raise ValueError(f"need {len(members)} non-negative weights with a positive sum, got {weights}")
        self.members = [{"family": m["family"], "params": dict(m.get("params", {}))} for m in members]
        self.weights = list(weights) if weights is not None else None

    def _build(self) -> list[StanceModel]:
        from stance.models import model_class

        return [model_class(m["family"])(**{**m["params"], "seed": self.seed}) for m in self.members]

    def fit(self, texts: Sequence[str], labels: Sequence[str], contexts: Sequence[str] | None = None
            ) -> EnsembleModel:
        """Fit every member on the same rows; raises what a member raises for bad input."""
        self.models_ = self._build()
        for model in self.models_:
            model.threads = self.threads
            model.fit(texts, labels, contexts)
        return self

    def predict_proba(self, texts: Sequence[str], contexts: Sequence[str] | None = None) -> np.ndarray:
        """``(n, 3)`` weighted mean of the members' probabilities, in ``LABELS`` order."""
        texts = check_texts(texts)
        if not texts:
            return np.zeros((0, len(LABELS)))
        return self._vote(texts, contexts, perturbed=False)

    def _perturbed_proba(self, texts: list[str], contexts: list[str]) -> np.ndarray:
        """The same vote over the members' own ``_perturbed_proba`` (no member caches the variants)."""
        return self._vote(texts, contexts, perturbed=True)

    def _vote(self, texts: list[str], contexts: Sequence[str] | None, perturbed: bool) -> np.ndarray:
        weights = np.asarray(self.weights if self.weights is not None else [1.0] * len(self.models_), dtype=float)
        for model in self.models_:  # the ensemble's runtime thread count holds for its members
            model.threads = self.threads
        stacked = np.stack([model._perturbed_proba(texts, contexts) if perturbed else model.predict_proba(texts, contexts)
                            for model in self.models_])
        return np.tensordot(weights / weights.sum(), stacked, axes=1)

    @property
    def backends(self) -> tuple[str, ...]:  # type: ignore[override]
        """The backends every member with a neural network can run (empty when none has one)."""
        from stance.models.backends import BACKENDS

        neural = [set(model.backends) for model in getattr(self, "models_", []) if model.backends]
        return tuple(b for b in BACKENDS if all(b in s for s in neural)) if neural else ()

    def with_backend(self, backend: str | None) -> EnsembleModel:
        """A copy whose members run on ``backend`` (members without a network ignore it); raises
        ``ValueError`` as :meth:`StanceModel.with_backend` does."""
        twin = super().with_backend(backend)
        if twin is not self:
            twin.models_ = [model.with_backend(backend) for model in self.models_]
        return twin

    def _save(self, folder: Path) -> None:
        for k, model in enumerate(self.models_):
            model.save(folder / MEMBER_DIR.format(k))

    @classmethod
    def _load(cls, folder: Path, config: dict[str, Any]) -> EnsembleModel:
        from stance.models import load_model

        model = cls(**config["params"])
        model.models_ = [load_model(folder / MEMBER_DIR.format(k)) for k in range(len(model.members))]
        return model
