"""Where the project's seeds, data, models and results live.

Everything is resolved from the project root: the folder above this package, or
``$STANCE_HOME`` when set (for an installed copy that works against another checkout).
"""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """The project root folder."""
    return Path(os.environ.get("STANCE_HOME") or Path(__file__).resolve().parents[1])


def seeds_dir() -> Path:
    return project_root() / "seeds"


def data_dir() -> Path:
    return project_root() / "data"


def models_dir() -> Path:
    return project_root() / "models"


def results_dir() -> Path:
    return project_root() / "experiments" / "results"


def encoders_dir() -> Path:
    """Where downloaded encoder weights are unpacked (``cache/encoders``, git-ignored)."""
    return project_root() / "cache" / "encoders"
