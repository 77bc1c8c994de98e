"""Sentences to vectors with a Hugging Face encoder: tokenising, chunking, batching, pooling, caching.

* :func:`chunk_ids`/:func:`tokenize_chunks` split long token sequences into windows (long text is
  never truncated);
* :func:`length_batches`/:func:`token_batches` group chunks of similar length, so padding stays small;
* :func:`embed_with` gives mean-pooled, L2-normalised embeddings from any encoder;
* :func:`encode` does so with a packaged encoder (:mod:`stance.models.hf`), cached on disk under
  ``<cache>/embeddings``;
* :func:`torch_threads` runs torch work on a given number of threads and gives the caller's
  count back afterwards (``None`` leaves torch alone).

torch and transformers are imported inside the functions: ``import stance`` stays torch-free.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from stance import paths
from stance.models import hf
from stance.models.base import check_contexts, check_texts
from stance.models.tokenizer import TokenizerFile

if TYPE_CHECKING:  # pragma: no cover
    import torch

# the encoder's sentence-transformers config uses 256 positions; longer text is chunked
ENCODE_MAX_LENGTH = 256
# at most this many sentences per forward pass of a packaged encoder, whatever the model's batch
# size: length-sorted batches of 16 pad far less than batches of 64 (mpnet on ONNX int8, 2 threads,
# interleaved: 2.1x faster on 48 sentences, 1.3x on 160); vectors differ only by padding noise
INFERENCE_BATCH = 16
# changing how embeddings are computed must change every cache key
_RECIPE = f"mean-pool+l2:chunks-of-{ENCODE_MAX_LENGTH}:v1"


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Inside: torch uses ``threads`` intra-op threads; the caller's count is restored on exit.

    ``None`` leaves torch as it is (and does not import it). Raises ``ValueError`` for a count
    below 1 and ``TypeError`` for a non-integer.
    """
    if threads is None:
        yield
        return
    if isinstance(threads, bool) or not isinstance(threads, int):
        raise TypeError(f"threads must be an int or None, got {type(threads).__name__}")
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    import torch

    previous = torch.get_num_threads()
    if previous != threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)


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


def check_segments(max_length: int, use_context: bool, context_tokens: int) -> None:
    """Raise ``ValueError`` for a ``max_length`` below 8 tokens or, with ``use_context``, a
    ``context_tokens`` outside ``1..max_length // 2`` (the sentence keeps at least half the window)."""
    if max_length < 8:
        raise ValueError(f"max_length must be at least 8 tokens, got {max_length}")
    if use_context and not 0 < context_tokens <= max_length // 2:
        raise ValueError(f"context_tokens must be in 1..{max_length // 2}, got {context_tokens}")


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
    sentence comes last); an empty context adds nothing. The sentence itself is never cut. Raises
    ``ValueError``/``TypeError`` as :func:`~stance.models.base.check_contexts` does for bad contexts.
    """
    first = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    last = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    head, tail = [t for t in (first,) if t is not None], [t for t in (last,) if t is not None]
    # no truncation: long text is split into chunks below, not cut
    encoded = tokenizer(list(texts), add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
    seconds: list[list[int]] = [[] for _ in encoded]
    if contexts is not None and context_tokens > 0:
        contexts = check_contexts(contexts, len(encoded))
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


def embed_chunks(
    tokenizer: Any, texts: Sequence[str], dim: int, pooled: Callable[[np.ndarray, np.ndarray], np.ndarray],
    batch_size: int = 64, max_length: int = ENCODE_MAX_LENGTH,
) -> np.ndarray:
    """Embeddings ``(n, dim)`` float32 of ``texts``, given ``pooled``: one padded batch
    (``input_ids``, ``attention_mask``; int64 ``(batch, tokens)``) to its L2-normalised vectors.

    Text longer than ``max_length`` tokens is split into chunks whose embeddings are averaged
    (then normalised again); chunks of similar length share a batch (:func:`length_batches`).
    """
    if not texts:
        return np.zeros((0, dim), dtype=np.float32)
    chunks, owners = tokenize_chunks(tokenizer, texts, max_length)
    chunk_vectors = np.zeros((len(chunks), dim), dtype=np.float32)
    for batch in length_batches([len(c) for c in chunks], batch_size):
        inputs = tokenizer.pad({"input_ids": [chunks[i] for i in batch]}, padding=True, return_tensors="np")
        chunk_vectors[batch] = pooled(inputs["input_ids"].astype(np.int64), inputs["attention_mask"].astype(np.int64))
    vectors = np.zeros((len(texts), dim), dtype=np.float32)
    np.add.at(vectors, np.asarray(owners), chunk_vectors)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.clip(norms, 1e-12, None)


def embed_with(
    model: Any, tokenizer: Any, texts: Sequence[str], batch_size: int = 64, max_length: int = ENCODE_MAX_LENGTH,
    threads: int | None = None,
) -> np.ndarray:
    """Mean-pooled, L2-normalised embeddings ``(n, dim)`` float32 from an HF encoder ``model`` run by torch.

    See :func:`embed_chunks` for chunking. ``model`` is put in eval mode. ``threads``: see
    :func:`torch_threads`.
    """
    model.eval()
    return embed_chunks(tokenizer, texts, int(model.config.hidden_size), torch_pooled(model, threads), batch_size,
                        max_length)


def torch_pooled(model: Any, threads: int | None = None) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """The :func:`embed_chunks` step for an HF encoder run by torch: one padded batch (int64
    ``input_ids``, ``attention_mask``) to mean-pooled, L2-normalised float32 vectors, on ``threads``
    threads (:func:`torch_threads`)."""
    import torch

    def pooled(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        mask_t = torch.from_numpy(mask)
        with torch_threads(threads), torch.inference_mode():
            hidden = model(input_ids=torch.from_numpy(ids), attention_mask=mask_t).last_hidden_state
            return torch.nn.functional.normalize(mean_pool(hidden, mask_t), dim=-1).numpy()

    return pooled


@lru_cache(maxsize=2)
def packaged_encoder(name: str = "minilm") -> tuple[Any, Any]:
    """Encoder ``name`` (``AutoModel``, in eval mode) and its tokenizer, loaded once per process.

    Raises :class:`~stance.models.hf.EncoderNotInstalledError` naming the install command if absent.
    """
    tokenizer, model = hf.from_pretrained(hf.encoder_dir(name), "AutoModel")
    return model, tokenizer


@lru_cache(maxsize=2)
def packaged_tokenizer(name: str = "minilm") -> TokenizerFile:
    """Encoder ``name``'s tokenizer alone, read by ``tokenizers`` without importing transformers or
    torch (the ONNX backends need neither; :class:`~stance.models.tokenizer.TokenizerFile`).

    Raises :class:`~stance.models.hf.EncoderNotInstalledError` naming the install command if absent.
    """
    return TokenizerFile(hf.encoder_dir(name))


# ---------------------------------------------------------------- embedding cache


def cache_dir() -> Path:
    """Where cached embeddings live: ``<cache>/embeddings`` (:func:`stance.paths.cache_dir`)."""
    return paths.cache_dir() / "embeddings"


def cache_key(text: str, name: str = "minilm") -> str:
    """Cache key of ``text``: sha256 of the weights' sha256, the embedding recipe and the text."""
    payload = f"{hf.weights_sha256(name)}\0{_RECIPE}\0{text}".encode()
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


def encode(texts: Sequence[str], batch_size: int = 64, cache: bool = True, name: str = "minilm",
           threads: int | None = None, backend: str = "torch-fp32") -> np.ndarray:
    """Embeddings ``(n, dim)`` float32 of ``texts`` from encoder ``name`` (see :func:`embed_chunks`).

    ``dim`` is 384 for ``minilm`` and 768 for ``mpnet``. ``threads``: intra-op threads for the
    encoding (``None`` leaves torch's setting alone). ``backend``: one of
    :data:`stance.models.backends.BACKENDS`.

    With ``cache`` and the ``torch-fp32`` backend (the one training uses), each text's vector is
    read from / written to :func:`cache_dir`, so repeated cross-validation encodes every sentence
    once; other backends never read or write the cache, so their vectors never mix with fp32 ones.
    Raises ``TypeError`` for a non-str text, ``ValueError`` for an unknown backend and
    :class:`~stance.models.hf.EncoderNotInstalledError` when the encoder is not installed.
    """
    from stance.models import backends

    texts = check_texts(texts)
    backends.check_backend(backend)
    batch_size = min(batch_size, INFERENCE_BATCH)
    if backend != backends.TRAINING_BACKEND:
        return embed_chunks(packaged_tokenizer(name), texts, hf.embedding_dim(name),
                            backends.pooled_batches(name, backend, threads), batch_size)
    if not cache:
        return embed_with(*packaged_encoder(name), texts, batch_size, threads=threads)
    folder = cache_dir()
    keys = [cache_key(text, name) for text in texts]
    found: dict[str, np.ndarray] = {}
    for key in dict.fromkeys(keys):
        vector = _cache_read(_cache_path(folder, key))
        if vector is not None:
            found[key] = vector
    missing = list(dict.fromkeys(t for t, k in zip(texts, keys) if k not in found))
    if missing:
        fresh = embed_with(*packaged_encoder(name), missing, batch_size, threads=threads)
        for text, vector in zip(missing, fresh):
            key = cache_key(text, name)
            found[key] = vector
            _cache_write(_cache_path(folder, key), vector)
    if not texts:
        return np.zeros((0, hf.embedding_dim(name)), dtype=np.float32)
    return np.stack([found[key] for key in keys]).astype(np.float32)
