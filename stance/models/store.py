"""The model store: a model name or folder -> a saved model, wherever the package is installed.

A name resolves, in this order, to:

1. an explicit folder holding a ``config.json`` (any path given instead of a name);
2. ``<store>/<name>/`` where the store is ``$STANCE_HOME`` or the user data folder
   (:func:`stance.paths.store_dir`); ``stance train`` writes there;
3. for a model shipped inside the package (the default, a TF-IDF model of a few MB), the
   packaged copy in ``stance/packaged/<name>/``.

The default name is the store's ``DEFAULT`` marker when there is one, else the packaged one.
A store entry that shadows a packaged model of the same name but was trained by another
package version or on other data warns (:class:`StaleModelWarning`): it may be an old copy.

Every resolved model carries a fingerprint: the sha256 of its folder (every file's relative
path and bytes, in sorted order). Encoder weights kept outside the folder are covered through
the sha256 the folder's config records for them. Scoring rows name the model and this hash.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from stance import paths
from stance.models.base import CONFIG_FILE, ModelNotFoundError, read_config

DEFAULT_FILE = "DEFAULT"
PACKAGED_DIR = Path(__file__).resolve().parents[1] / "packaged"
# the wheel carries the default model; more than this and it must be installed into the store instead
PACKAGED_MAX_BYTES = 25 * 1024 * 1024


class StaleModelWarning(UserWarning):
    """A store entry shadows a packaged model trained by another package version or on other data."""


@dataclass(frozen=True)
class ModelRef:
    """A resolved model: its display ``name``, its folder, where it was found and its sha256."""

    name: str
    path: Path
    origin: str  # "folder", "store" or "packaged"
    sha256: str


def default_name() -> str:
    """The default model's name: the store's ``DEFAULT`` marker, else the packaged one, else ``baseline``."""
    for marker in (paths.models_dir() / DEFAULT_FILE, PACKAGED_DIR / DEFAULT_FILE):
        if marker.is_file():
            name = marker.read_text(encoding="utf-8").strip()
            if name:
                return name
    return "baseline"


# config keys that record how long a run took, not what the model is: left out of its hash, so that
# retraining to the same weights gives the same sha256
VOLATILE_CONFIG_KEYS = frozenset({"train_seconds"})
# the model card documents the model; predictions never read it
DOCUMENTATION_FILES = frozenset({"README.md"})


def _content(path: Path, folder: Path) -> bytes:
    if path.name == CONFIG_FILE:
        config = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(config, dict):
            config = {k: v for k, v in config.items() if k not in VOLATILE_CONFIG_KEYS}
        return json.dumps(config, sort_keys=True).encode()
    return path.read_bytes()


def folder_sha256(folder: Path) -> str:
    """sha256 of a saved model: every file's relative path and bytes, in sorted path order.

    Model cards (:data:`DOCUMENTATION_FILES`) are left out, and ``config.json`` is hashed without
    :data:`VOLATILE_CONFIG_KEYS` (canonical JSON), so the hash names the weights and the settings
    predictions use, and a retrain to the same weights keeps it.
    """
    digest = hashlib.sha256()
    folder = Path(folder)
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name not in DOCUMENTATION_FILES):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(_content(path, folder))
        digest.update(b"\0")
    return digest.hexdigest()


@lru_cache(maxsize=32)
def _sha256_cached(folder: Path, stamp: tuple[tuple[str, int, int], ...]) -> str:
    return folder_sha256(folder)


def _stamp(folder: Path) -> tuple[tuple[str, int, int], ...]:
    # re-hash only when a file changed (size or modification time), not on every resolve
    return tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file())


def model_sha256(folder: Path) -> str:
    """:func:`folder_sha256` of a saved model, cached while its files are unchanged."""
    folder = Path(folder).resolve()
    return _sha256_cached(folder, _stamp(folder))


def _is_model(folder: Path) -> bool:
    return (folder / CONFIG_FILE).is_file()


def _provenance(folder: Path) -> tuple[str | None, str | None]:
    """(stance version, training data sha256) a saved model records; its config is read once per change."""
    stat = (Path(folder) / CONFIG_FILE).stat()
    return _provenance_cached(Path(folder).resolve(), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=32)
def _provenance_cached(folder: Path, mtime_ns: int, size: int) -> tuple[str | None, str | None]:
    config = read_config(folder)
    data = config.get("training_data") or {}
    return (config.get("versions") or {}).get("stance"), data.get("data_sha256") if isinstance(data, dict) else None


def _warn_if_stale(name: str, stored: Path) -> None:
    packaged = PACKAGED_DIR / name
    if not _is_model(packaged):
        return
    mine, theirs = _provenance(stored), _provenance(packaged)
    if mine != theirs:
        warnings.warn(
            f"model {name!r} in the store ({stored}; stance {mine[0]}, data {str(mine[1])[:12]}) shadows the "
            f"packaged {name!r} (stance {theirs[0]}, data {str(theirs[1])[:12]}); delete the store entry to use "
            "the packaged model, or retrain it",
            StaleModelWarning,
            stacklevel=3,
        )


def available_names() -> list[str]:
    """Names a model can be asked for here: the store's and the packaged ones, sorted, without repeats."""
    roots = [root for root in (paths.models_dir(), PACKAGED_DIR) if root.is_dir()]
    return sorted({p.name for root in roots for p in root.iterdir() if _is_model(p)})


def missing_message(name: str) -> str:
    """What to run to get model ``name``, and which models are available."""
    available = ", ".join(available_names()) or "none"
    return (f"model {name!r} is not in the model store ({paths.models_dir()}) nor packaged (available: "
            f"{available}); build it in a checkout with `make all` (or `stance train {name}` after "
            "`make data evaluate`), point $STANCE_HOME at a store that holds it, or pass a saved-model folder")


def resolve(name_or_path: str | Path | None = None) -> ModelRef:
    """The saved model a name or folder refers to (``None``: the default model).

    Raises :class:`~stance.models.ModelNotFoundError` with :func:`missing_message` when no
    folder, store entry or packaged copy has it. May warn :class:`StaleModelWarning`.
    """
    name = default_name() if name_or_path is None else name_or_path
    candidate = Path(name)
    if isinstance(name, Path) or candidate.is_absolute() or len(candidate.parts) > 1 or _is_model(candidate):
        if not _is_model(candidate):
            raise ModelNotFoundError(f"no saved model at {candidate} (no {CONFIG_FILE}); {missing_message(candidate.name)}")
        return ModelRef(candidate.name, candidate.resolve(), "folder", model_sha256(candidate))
    stored = paths.models_dir() / str(name)
    if _is_model(stored):
        _warn_if_stale(str(name), stored)
        return ModelRef(str(name), stored.resolve(), "store", model_sha256(stored))
    packaged = PACKAGED_DIR / str(name)
    if _is_model(packaged):
        return ModelRef(str(name), packaged, "packaged", model_sha256(packaged))
    raise ModelNotFoundError(missing_message(str(name)))


def package_default(name: str | None = None) -> Path:
    """Copy the store's default model into the package (``stance/packaged/``) so wheels carry it.

    Run by ``stance train`` in a checkout. Raises ``ValueError`` when the model is larger than
    :data:`PACKAGED_MAX_BYTES` (it must then be installed into the store by users instead).
    """
    name = name or default_name()
    source = paths.models_dir() / name
    if not _is_model(source):
        raise ModelNotFoundError(missing_message(name))
    size = sum(p.stat().st_size for p in source.rglob("*") if p.is_file())
    if size > PACKAGED_MAX_BYTES:
        raise ValueError(f"model {name!r} is {size / 2**20:.1f} MB, over the {PACKAGED_MAX_BYTES / 2**20:.0f} MB "
                         "a wheel may carry; keep the packaged default as it is")
    target = PACKAGED_DIR / name
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
    for stale in PACKAGED_DIR.iterdir():
        if stale.is_dir() and stale.name != name:
            shutil.rmtree(stale)
    (PACKAGED_DIR / DEFAULT_FILE).write_text(name + "\n", encoding="utf-8")
    return target


_METRICS = (("lodo", "macro_f1"), ("challenge", "macro_f1"), ("contrast_test", "pair_accuracy"),
            ("article_test", "side_accuracy"))


def _summary(name: str, folder: Path, origin: str) -> dict[str, Any]:
    config = read_config(folder)
    data = config.get("training_data") if isinstance(config.get("training_data"), dict) else {}
    cv = config.get("cv_metrics") if isinstance(config.get("cv_metrics"), dict) else {}
    metrics = {f"{where}.{what}": cv[where][what] for where, what in _METRICS
               if isinstance(cv.get(where), dict) and isinstance(cv[where].get(what), (int, float))}
    return {
        "name": name,
        "origin": origin,
        "default": name == default_name(),
        "path": str(folder),
        "family": config.get("family"),
        "spec": config.get("spec"),
        "seed": config.get("seed"),
        "stance_version": (config.get("versions") or {}).get("stance"),
        "data_sha256": data.get("data_sha256"),
        "training_rows": sum((data.get("label_counts") or {}).values()) or None,
        "metrics": metrics,
        "sha256": model_sha256(folder),
    }


def list_models() -> list[dict[str, Any]]:
    """Every model in the store and in the package, store entries first.

    Each entry: ``name``, ``origin`` (store or packaged), ``default``, ``path``, ``family``,
    ``spec``, ``seed``, ``stance_version``, ``data_sha256``, ``training_rows``, ``metrics``
    (LODO and challenge macro-F1, contrast-test pair accuracy, article-test side accuracy, as
    recorded at training) and the folder's ``sha256``. A store entry shadows a packaged one of
    the same name.
    """
    seen: list[dict[str, Any]] = []
    for origin, root in (("store", paths.models_dir()), ("packaged", PACKAGED_DIR)):
        if root.is_dir():
            seen.extend(_summary(folder.name, folder, origin) for folder in sorted(root.iterdir()) if _is_model(folder))
    return seen


@lru_cache(maxsize=8)
def _load(path: Path, sha256: str) -> Any:
    from stance.models import load_model

    return load_model(path)


def load(name_or_path: str | Path | None = None, backend: str | None = None) -> tuple[Any, ModelRef]:
    """The model a name or folder refers to (see :func:`resolve`), loaded once per folder and
    content hash (a retrained model is reloaded), and its :class:`ModelRef`.

    ``backend``: run the model on this inference backend (:meth:`StanceModel.with_backend`;
    ``None``: the model's default); raises ``ValueError`` for one the model cannot run.
    """
    ref = resolve(name_or_path)
    return _variant(ref.path, ref.sha256, backend), ref


@lru_cache(maxsize=8)
def _variant(path: Path, sha256: str, backend: str | None) -> Any:
    return _load(path, sha256).with_backend(backend)
