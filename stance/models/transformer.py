"""Full fine-tuning of the packaged MiniLM as a 3-way sequence classifier.

The shared loop of :mod:`stance.models.training` (AdamW, linear warm-up and decay, gradient
clipping, fixed epochs) with a class-weighted cross-entropy, instead of the Hugging Face Trainer:
fewer moving parts, no checkpoints written, and the same predictions for the same seed on CPU.

Text longer than ``max_length`` tokens is never cut: it is split into near-equal token chunks
(in training each chunk carries its text's label; in prediction the chunks' probabilities are
averaged). The saved model keeps the Hugging Face files (``model.safetensors``, its
``config.json``, tokenizer) in ``hf/``, since the folder's own ``config.json`` is the stance one.
"""

from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from stance.labels import LABEL_TO_ID, LABELS
from stance.models import encoder, hf, training
from stance.models.base import (
    StanceModel,
    average_chunks,
    check_fit_inputs,
    check_texts,
    expand_proba,
)

HF_DIR = "hf"
# Padded tokens per prediction batch (at most 256 sentences). Measured side by side on 2 cores
# (64 / 512 sentences, sentences/s): 8192 tokens 64/98, 2048 100/130, 1024 111/132, 512 116/131.
# Smaller batches pad less (a length-sorted 64-sentence call is otherwise one batch padded to its
# longest sentence) and attention grows with the padded length; below ~1k tokens per-pass
# overhead starts to cost on longer inputs.
PREDICT_MAX_TOKENS = 1024
PREDICT_MAX_BATCH = 256


def class_weights(y: np.ndarray) -> np.ndarray:
    """Balanced weights ``n / (k * count)`` per label id; labels absent from ``y`` get 0."""
    counts = np.bincount(y, minlength=len(LABELS)).astype(np.float64)
    present = counts > 0
    weights = np.zeros(len(LABELS))
    weights[present] = len(y) / (present.sum() * counts[present])
    return weights


class TransformerModel(StanceModel):
    """MiniLM-L6 fine-tuned end to end with a 3-label classification head."""

    family = "transformer"
    backends = ("torch-fp32", "torch-int8")

    def __init__(
        self,
        epochs: int = 5,
        learning_rate: float = 5e-5,
        batch_size: int = 16,
        max_length: int = 128,
        warmup_ratio: float = 0.1,
        weight_decay: float = 0.01,
        use_context: bool = False,
        context_tokens: int = 48,
        seed: int = 0,
    ) -> None:
        super().__init__(seed)
        encoder.check_segments(max_length, use_context, context_tokens)
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_length = max_length
        self.warmup_ratio = warmup_ratio
        self.weight_decay = weight_decay
        # the context goes in as a second segment after the sentence: [CLS] sentence [SEP] context [SEP]
        self.use_context = use_context
        self.context_tokens = context_tokens
        # how many chunks each text of the last predict_proba call was split into
        self.last_chunk_counts_: np.ndarray = np.zeros(0, dtype=int)
        # True on a copy made by quantized(): int8 Linear layers, for inference only
        self.quantized_ = False

    def _chunks(self, texts: list[str], contexts: Sequence[str] | None) -> tuple[list[list[int]], list[int]]:
        return encoder.tokenize_chunks(self.tokenizer_, texts, self.max_length,
                                       contexts if self.use_context else None, self.context_tokens)

    def fit(self, texts: Sequence[str], labels: Sequence[str], contexts: Sequence[str] | None = None
            ) -> TransformerModel:
        """Fine-tune from the packaged weights on ``texts``/``labels``.

        Runs on :attr:`threads` torch threads (``None``: torch's current setting); the same seed
        gives the same model, and no process-wide generator or setting is left changed. Raises
        ``TypeError`` for a non-str text (naming its position), ``ValueError`` for an unknown
        label, mismatched lengths or an empty training set.
        """
        texts, y = check_fit_inputs(texts, labels)
        import torch

        with encoder.torch_threads(self.threads), training.seeded_torch(self.seed):
            self.quantized_ = False
            # the new head's initial weights come from the seeded fork of torch's generator
            self.tokenizer_, self.model_ = hf.from_pretrained(
                hf.encoder_dir(), "AutoModelForSequenceClassification", num_labels=len(LABELS),
                id2label=dict(enumerate(LABELS)), label2id=dict(LABEL_TO_ID),
            )
            self.present_ = [int(c) for c in np.unique(y)]
            chunks, owners = self._chunks(texts, contexts)
            chunk_y = torch.tensor(y[np.asarray(owners)])
            loss_fn = torch.nn.CrossEntropyLoss(weight=torch.tensor(class_weights(y), dtype=torch.float32))

            def batch_loss(batch: np.ndarray) -> torch.Tensor:
                inputs = encoder.pad_batch(self.tokenizer_, [chunks[i] for i in batch])
                return loss_fn(self.model_(**inputs).logits, chunk_y[batch])

            start = time.perf_counter()
            training.train(self.model_, len(chunks), batch_loss, epochs=self.epochs, batch_size=self.batch_size,
                           learning_rate=self.learning_rate, rng=np.random.default_rng(self.seed),
                           warmup_ratio=self.warmup_ratio, weight_decay=self.weight_decay, name="transformer",
                           unit="chunks")
        self.metadata["encoder"] = hf.encoder_reference()
        self.metadata["present_classes"] = [LABELS[c] for c in self.present_]
        self.metadata["train_seconds"] = round(time.perf_counter() - start, 1)
        return self

    def predict_proba(
        self,
        texts: Sequence[str],
        contexts: Sequence[str] | None = None,
        batch_size: int | None = None,
        max_tokens: int = PREDICT_MAX_TOKENS,
    ) -> np.ndarray:
        """``(n, 3)`` probabilities in ``LABELS`` order; long texts are chunked and averaged.

        All texts are tokenised in one call, then chunks of similar length are batched: by default
        each batch holds up to ``max_tokens`` padded tokens (:func:`encoder.token_batches`); an
        integer ``batch_size`` gives fixed-size batches instead. Labels absent from the training
        set get probability 0. Runs on :attr:`threads` torch threads (``None``: torch's current
        setting, left as it is). Raises ``TypeError`` naming the position of a non-str text.
        """
        texts = check_texts(texts)
        if not texts:
            self.last_chunk_counts_ = np.zeros(0, dtype=int)
            return np.zeros((0, len(LABELS)))
        import torch

        chunks, owners = self._chunks(texts, contexts)
        chunk_proba = np.zeros((len(chunks), len(LABELS)))
        self.model_.eval()
        with encoder.torch_threads(self.threads), torch.inference_mode():
            lengths = [len(c) for c in chunks]
            batches = (encoder.length_batches(lengths, batch_size) if batch_size is not None
                       else encoder.token_batches(lengths, max_tokens, PREDICT_MAX_BATCH))
            for batch in batches:
                inputs = encoder.pad_batch(self.tokenizer_, [chunks[i] for i in batch])
                logits = self.model_(**inputs).logits[:, self.present_].double()
                chunk_proba[batch] = expand_proba(torch.softmax(logits, dim=-1).numpy(), self.present_)
        proba, self.last_chunk_counts_ = average_chunks(chunk_proba, owners, len(texts))
        return proba

    def quantized(self) -> TransformerModel:
        """A copy whose ``Linear`` layers use int8 dynamic quantisation (this model stays fp32).

        Weights are stored as int8 and activations are quantised per batch on the fly
        (``torch.ao.quantization.quantize_dynamic``); embeddings, LayerNorm and softmax stay
        fp32. Opt-in: ``benchmarks/quantisation.py`` measures its macro-F1 cost. The copy can
        predict but not be saved (a saved model is always the fp32 weights).
        """
        import torch
        from torch.ao.quantization import quantize_dynamic

        twin = copy.copy(self)
        with warnings.catch_warnings():
            # torch 2.13 flags eager-mode quantisation as deprecated in favour of torchao (not a
            # dependency here); the kernels still work
            warnings.simplefilter("ignore")
            # inplace=False deep-copies the network, so the fp32 original keeps predicting as before
            twin.model_ = quantize_dynamic(self.model_, {torch.nn.Linear}, dtype=torch.qint8)
        twin.model_.eval()
        twin.quantized_ = True
        twin.metadata = {**self.metadata, "quantized": "int8-dynamic"}
        return twin

    def with_backend(self, backend: str | None) -> TransformerModel:
        """``torch-int8`` gives :meth:`quantized`; otherwise as :meth:`StanceModel.with_backend`."""
        twin = super().with_backend(backend)
        return twin.quantized() if backend == "torch-int8" and not self.quantized_ else twin

    def _save(self, folder: Path) -> None:
        if self.quantized_:
            raise ValueError("a quantised copy cannot be saved; save the fp32 model it was made from")
        # written into config.json by the base class after this returns
        self.metadata["present_classes"] = [LABELS[c] for c in self.present_]
        self.metadata["hf_weights_sha256"] = hf.save_hf(self.model_, self.tokenizer_, folder / HF_DIR)

    @classmethod
    def _load(cls, folder: Path, config: dict[str, Any]) -> TransformerModel:
        model = cls(**config["params"])
        model.tokenizer_, model.model_ = hf.load_hf(
            folder / HF_DIR, config.get("hf_weights_sha256"), "AutoModelForSequenceClassification"
        )
        model.present_ = [LABEL_TO_ID[label] for label in config.get("present_classes", LABELS)]
        return model
