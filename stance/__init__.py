"""stance: which side a sentence takes in the encryption vs. abuse-detection debate.

``import stance`` is cheap: the prediction API, and with it scikit-learn, torch and
transformers, is imported on first use.
"""

from __future__ import annotations

from typing import Any

from stance.labels import LABELS

__version__ = "0.1.0"
__all__ = ["LABELS", "Prediction", "load", "predict", "score_article", "__version__"]

_LAZY = {"predict", "score_article", "load", "Prediction"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from stance import api as _api

        return getattr(_api, name)
    raise AttributeError(f"module 'stance' has no attribute {name!r}")
