"""Sentence-embedding models: a logistic head on frozen MiniLM embeddings, and SetFit.

* ``embedding-logreg``: the packaged encoder stays frozen; only a logistic regression is fitted.
  The saved model holds the head (``head.npz``) and refers to the encoder by package, version
  and weights sha256; loading refuses other weights.
* ``setfit``: the encoder is first tuned contrastively on sentence pairs (same label -> cosine 1,
  different label -> cosine 0), then a logistic head is fitted on the tuned embeddings. The
  tuned encoder is saved in Hugging Face format under ``encoder/``.

The ``setfit`` package itself runs offline here, but its Trainer wrote checkpoints, took ~6 s
per step of 4 pairs and saves its head with pickle; this compact implementation follows the
same recipe with plain torch.

Nothing is pickled: heads are NumPy arrays in ``.npz`` files loaded with ``allow_pickle=False``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from stance.labels import LABELS
from stance.models import encoder, hf, training
from stance.models.backends import BACKENDS, TRAINING_BACKEND, shipped_default
from stance.models.base import StanceModel, check_contexts, check_fit_inputs, check_texts, expand_proba

HEAD_FILE = "head.npz"
ENCODER_DIR = "encoder"


def without_embedding_cache(model: StanceModel) -> StanceModel:
    """A shallow copy of ``model`` whose frozen-encoder parts (the model itself or an ensemble's
    members) compute every embedding instead of reading the on-disk cache, for timing the encoder
    rather than file reads. ``model`` itself is left as it was."""
    twin = copy.copy(model)
    if hasattr(twin, "models_"):
        twin.models_ = [without_embedding_cache(member) for member in twin.models_]
    if hasattr(twin, "cache"):
        twin.cache = False
    return twin


class LogisticHead:
    """A fitted multinomial (or binary) logistic regression kept as plain arrays.

    ``classes`` are the label ids seen in training; probabilities are computed in NumPy with
    the same formulas scikit-learn uses, so a reloaded head gives identical numbers.
    """

    def __init__(self, classes: np.ndarray, coef: np.ndarray, intercept: np.ndarray) -> None:
        self.classes = np.asarray(classes, dtype=np.int64)
        self.coef = np.asarray(coef, dtype=np.float64)
        self.intercept = np.asarray(intercept, dtype=np.float64)

    @classmethod
    def fit(cls, X: np.ndarray, y: np.ndarray, C: float, seed: int) -> LogisticHead:
        """Balanced-class logistic regression on ``X``; one class only gives a constant head."""
        present = np.unique(y)
        if len(present) == 1:
            return cls(present, np.zeros((1, X.shape[1])), np.zeros(1))
        from sklearn.linear_model import LogisticRegression

        head = LogisticRegression(C=C, class_weight="balanced", max_iter=5000, random_state=seed)
        head.fit(X.astype(np.float64), y)
        return cls(head.classes_, head.coef_, head.intercept_)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """``(n, 3)`` probabilities in ``LABELS`` order; classes absent in training get 0."""
        X = np.asarray(X, dtype=np.float64)
        if len(self.classes) == 1:
            return expand_proba(np.ones((len(X), 1)), self.classes)
        scores = X @ self.coef.T + self.intercept
        if len(self.classes) == 2:  # one score: the second class against the first
            positive = 1.0 / (1.0 + np.exp(-scores[:, 0]))
            proba = np.stack([1.0 - positive, positive], axis=1)
        else:
            shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
            proba = shifted / shifted.sum(axis=1, keepdims=True)
        return expand_proba(proba, self.classes)

    def save(self, path: Path) -> None:
        np.savez(path, classes=self.classes, coef=self.coef, intercept=self.intercept)

    @classmethod
    def load(cls, path: Path) -> LogisticHead:
        """Read a head written by :meth:`save`; raises ``FileNotFoundError`` if absent."""
        with np.load(path, allow_pickle=False) as data:
            return cls(data["classes"], data["coef"], data["intercept"])


class _HeadOverEmbeddings(StanceModel):
    """A logistic head over sentence embeddings; subclasses say how texts are embedded."""

    C: float
    encoder: str = "minilm"
    use_context: bool = False

    def _embed(self, texts: list[str], cache: bool | None = None) -> np.ndarray:
        """``(n, dim)`` embeddings; ``cache=False`` never touches an embedding cache, ``None``
        uses the model's own setting."""
        raise NotImplementedError

    def _features(self, texts: list[str], contexts: Sequence[str] | None, cache: bool | None = None) -> np.ndarray:
        """Sentence embeddings, followed by the context's embeddings (zeros for an empty context)
        when ``use_context``: ``(n, dim)`` or ``(n, 2 * dim)``. ``cache=False`` applies to the
        sentences only: contexts are real text, worth keeping."""
        vectors = self._embed(texts, cache)
        if not self.use_context:
            return vectors
        contexts = check_contexts(contexts, len(texts))
        with_context = [i for i, c in enumerate(contexts) if c.strip()]
        context_vectors = np.zeros_like(vectors)
        if with_context:
            context_vectors[with_context] = self._embed([contexts[i] for i in with_context])
        return np.hstack([vectors, context_vectors])

    def _perturbed_proba(self, texts: list[str], contexts: list[str]) -> np.ndarray:
        """Probabilities of explanation variants, embedded without the on-disk cache: one-off
        texts would otherwise add a cache file per deleted word."""
        if not texts:
            return np.zeros((0, len(LABELS)))
        return self.head_.predict_proba(self._features(texts, contexts, cache=False))

    def _fit_head(self, texts: list[str], y: np.ndarray, contexts: Sequence[str] | None = None) -> None:
        self.head_ = LogisticHead.fit(self._features(texts, contexts), y, self.C, self.seed)
        self.metadata["encoder"] = hf.encoder_reference(self.encoder)

    def predict_proba(self, texts: Sequence[str], contexts: Sequence[str] | None = None) -> np.ndarray:
        """``(n, 3)`` probabilities in ``LABELS`` order; raises ``TypeError`` naming a non-str text."""
        texts = check_texts(texts)
        if not texts:
            return np.zeros((0, len(LABELS)))
        return self.head_.predict_proba(self._features(texts, contexts))


class EmbeddingLogRegModel(_HeadOverEmbeddings):
    """Frozen packaged sentence embeddings (cached on disk) and a balanced logistic regression.

    ``encoder``: ``"minilm"`` (all-MiniLM-L6-v2, 384 wide) or ``"mpnet"`` (all-mpnet-base-v2, 768
    wide; installed by ``stance install-encoder mpnet``). ``use_context``: the context string's
    embedding is concatenated to the sentence's.
    """

    family = "embedding-logreg"
    backends = BACKENDS

    def __init__(self, C: float = 10.0, batch_size: int = 64, cache: bool = True, encoder: str = "minilm",
                 use_context: bool = False, seed: int = 0) -> None:
        super().__init__(seed)
        self.C = C
        self.batch_size = batch_size
        self.cache = cache
        self.encoder = encoder
        self.use_context = use_context

    def _embed(self, texts: list[str], cache: bool | None = None) -> np.ndarray:
        cache = self.cache if cache is None else cache and self.cache
        return encoder.encode(texts, self.batch_size, cache=cache, name=self.encoder, threads=self.threads,
                              backend=self.backend or TRAINING_BACKEND)

    def fit(self, texts: Sequence[str], labels: Sequence[str], contexts: Sequence[str] | None = None
            ) -> EmbeddingLogRegModel:
        """Fit the head on ``texts``; raises ``TypeError`` for non-str texts, ``ValueError`` if empty."""
        texts, y = check_fit_inputs(texts, labels)
        self._fit_head(texts, y, contexts)
        return self

    def _save(self, folder: Path) -> None:
        self.head_.save(folder / HEAD_FILE)

    @classmethod
    def _load(cls, folder: Path, config: dict[str, Any]) -> EmbeddingLogRegModel:
        hf.check_encoder_reference(config.get("encoder"), str(folder))
        model = cls(**config["params"])
        model.head_ = LogisticHead.load(folder / HEAD_FILE)
        model.backend = shipped_default(model.encoder)
        return model


def make_pairs(
    y: np.ndarray, pairs_per_sentence: int, rng: np.random.Generator, max_pairs: int | None = None
) -> np.ndarray:
    """Contrastive pairs ``(i, j, target)``: target 1 for the same label, 0 for different labels.

    Each sentence anchors ``pairs_per_sentence`` pairs, alternating positive and negative (a
    sentence whose label has no other member, or a set with one label, gets only the kind that
    exists). Pairs are shuffled; ``max_pairs`` keeps the first that many.
    """
    by_label = {int(c): np.flatnonzero(y == c) for c in np.unique(y)}
    pairs: list[tuple[int, int, float]] = []
    for i, label in enumerate(y):
        same = by_label[int(label)][by_label[int(label)] != i]
        other = np.flatnonzero(y != label)
        for k in range(pairs_per_sentence):
            want_positive = (k % 2 == 0 and len(same) > 0) or len(other) == 0
            pool = same if want_positive else other
            if len(pool) == 0:
                break
            pairs.append((i, int(rng.choice(pool)), 1.0 if want_positive else 0.0))
    table = np.array(pairs, dtype=np.float64).reshape(-1, 3)
    table = table[rng.permutation(len(table))]
    return table if max_pairs is None else table[:max_pairs]


class SetFitModel(_HeadOverEmbeddings):
    """SetFit: contrastive tuning of the packaged encoder on sentence pairs, then a logistic head.

    ``pairs_per_sentence`` pairs are drawn per training sentence (seeded), at most ``max_pairs``
    in all, trained ``epochs`` times with a cosine-similarity MSE loss.
    """

    family = "setfit"
    backends = (TRAINING_BACKEND,)  # its tuned encoder is its own: no exported graph

    def __init__(
        self,
        pairs_per_sentence: int = 20,
        max_pairs: int | None = 4000,
        epochs: int = 1,
        learning_rate: float = 2e-5,
        batch_size: int = 16,
        max_length: int = 128,
        C: float = 1.0,
        seed: int = 0,
    ) -> None:
        super().__init__(seed)
        self.pairs_per_sentence = pairs_per_sentence
        self.max_pairs = max_pairs
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_length = max_length
        self.C = C

    def _tune(self, texts: list[str], y: np.ndarray) -> None:
        """Contrastive fine-tuning of ``self.encoder_`` on pairs of training chunks (:func:`training.train`)."""
        import torch

        model, tokenizer = self.encoder_, self.tokenizer_
        # long texts become several chunks with their text's label, so nothing is cut off
        chunks, owners = encoder.tokenize_chunks(tokenizer, texts, self.max_length)
        chunk_y = y[np.asarray(owners)]
        rng = np.random.default_rng(self.seed)
        pairs = make_pairs(chunk_y, self.pairs_per_sentence, rng, self.max_pairs)

        def batch_loss(batch: np.ndarray) -> torch.Tensor:
            left, right, target = pairs[batch, 0].astype(int), pairs[batch, 1].astype(int), pairs[batch, 2]
            inputs = encoder.pad_batch(tokenizer, [chunks[i] for i in (*left, *right)])
            pooled = encoder.mean_pool(model(**inputs).last_hidden_state, inputs["attention_mask"])
            cosine = torch.nn.functional.cosine_similarity(pooled[: len(batch)], pooled[len(batch) :])
            return torch.nn.functional.mse_loss(cosine, torch.tensor(target, dtype=cosine.dtype))

        # make_pairs shuffled the pairs already: the first epoch takes them in that order
        training.train(model, len(pairs), batch_loss, epochs=self.epochs, batch_size=self.batch_size,
                       learning_rate=self.learning_rate, rng=rng, shuffle_first_epoch=False, name="setfit",
                       unit="pairs")

    def _embed(self, texts: list[str], cache: bool | None = None) -> np.ndarray:
        return encoder.embed_with(self.encoder_, self.tokenizer_, texts, max_length=self.max_length,
                                  threads=self.threads)

    def fit(self, texts: Sequence[str], labels: Sequence[str], contexts: Sequence[str] | None = None) -> SetFitModel:
        """Tune the encoder and fit the head; raises ``TypeError`` for non-str texts, ``ValueError`` if empty.

        Runs on :attr:`threads` torch threads (``None``: torch's current setting); the same seed
        gives the same model, and no process-wide generator or setting is left changed.
        """
        texts, y = check_fit_inputs(texts, labels)
        with encoder.torch_threads(self.threads), training.seeded_torch(self.seed):
            self.tokenizer_, self.encoder_ = hf.from_pretrained(hf.encoder_dir(), "AutoModel")
            self._tune(texts, y)
            self._fit_head(texts, y)
        return self

    def _save(self, folder: Path) -> None:
        self.head_.save(folder / HEAD_FILE)
        # written into config.json by the base class after this returns
        self.metadata["tuned_weights_sha256"] = hf.save_hf(self.encoder_, self.tokenizer_, folder / ENCODER_DIR)

    @classmethod
    def _load(cls, folder: Path, config: dict[str, Any]) -> SetFitModel:
        model = cls(**config["params"])
        model.tokenizer_, model.encoder_ = hf.load_hf(
            folder / ENCODER_DIR, config.get("tuned_weights_sha256"), "AutoModel"
        )
        model.head_ = LogisticHead.load(folder / HEAD_FILE)
        return model
