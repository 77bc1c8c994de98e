"""Model families behind one contract, and loading a saved model by its ``config.json``."""

from __future__ import annotations

from pathlib import Path

from stance.models.base import ModelNotFoundError, StanceModel, read_config

# family name -> "module:Class"; imported only when that family is used
FAMILIES: dict[str, str] = {
    "majority": "stance.models.reference:MajorityModel",
    "stratified-random": "stance.models.reference:StratifiedRandomModel",
    "keyword-rule": "stance.models.reference:KeywordRuleModel",
    "tfidf": "stance.models.tfidf:TfidfModel",
    "transformer": "stance.models.transformer:TransformerModel",
    "embedding-logreg": "stance.models.embedding:EmbeddingLogRegModel",
    "setfit": "stance.models.embedding:SetFitModel",
    "ensemble": "stance.models.ensemble:EnsembleModel",
    "partial-finetune": "stance.models.partial:PartialFineTuneModel",
}


def model_class(family: str) -> type[StanceModel]:
    """The class of a model family; raises ``ValueError`` for an unknown family."""
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; known: {sorted(FAMILIES)}")
    import importlib

    module, name = FAMILIES[family].split(":")
    return getattr(importlib.import_module(module), name)


def load_model(directory: str | Path) -> StanceModel:
    """Load any saved model from its folder; raises :class:`ModelNotFoundError` if absent."""
    config = read_config(Path(directory))
    return model_class(config["family"]).load(directory)


__all__ = ["FAMILIES", "ModelNotFoundError", "StanceModel", "load_model", "model_class"]
