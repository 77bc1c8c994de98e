"""Where things live: the checkout's training inputs, the model store, and the cache.

Two kinds of place, kept apart so the package works when installed anywhere:

* **The checkout** (:func:`project_root`): seeds, labelled data and experiment results. Only the
  training and evaluation flow reads them; they exist only in a clone of the repository.
* **The model store** (:func:`store_dir`): saved models (``<store>/<name>/``), the ``DEFAULT``
  marker and installed encoders (``<store>/encoders/``). ``$STANCE_HOME`` names it when set (the
  Makefile points it at the checkout's ``models/``); otherwise it is the user data folder that
  ``platformdirs`` gives (``~/.local/share/stance`` on Linux).
* **The cache** (:func:`cache_dir`): embeddings, rebuilt on demand. ``$STANCE_CACHE_DIR`` when set,
  else the user cache folder (``~/.cache/stance`` on Linux).

Every function reads the environment when called, so a caller may point the store elsewhere
at any time; nothing here creates a folder.
"""

from __future__ import annotations

import os
from pathlib import Path

STORE_ENV = "STANCE_HOME"
CACHE_ENV = "STANCE_CACHE_DIR"
APP_NAME = "stance"


def project_root() -> Path:
    """The checkout: the folder above this package (holds ``seeds/``, ``data/``, ``experiments/``)."""
    return Path(__file__).resolve().parents[1]


def seeds_dir() -> Path:
    return project_root() / "seeds"


def data_dir() -> Path:
    return project_root() / "data"


def results_dir() -> Path:
    return project_root() / "experiments" / "results"


def store_dir() -> Path:
    """The model store's root: ``$STANCE_HOME``, else the user data folder."""
    configured = os.environ.get(STORE_ENV)
    if configured:
        return Path(configured).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def models_dir() -> Path:
    """Where saved models are looked up and written by name: the store root."""
    return store_dir()


def encoders_dir() -> Path:
    """Where installed encoder weights are unpacked: ``<store>/encoders``."""
    return store_dir() / "encoders"


def cache_dir() -> Path:
    """The cache root (embeddings): ``$STANCE_CACHE_DIR``, else the user cache folder."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))
