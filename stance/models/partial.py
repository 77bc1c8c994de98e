"""Partial fine-tuning: a packaged encoder's top layers and a linear head trained, the lower layers frozen.

Freezing the lower layers of a pretrained encoder and training only the top ones is the usual
way to adapt a large encoder on a small budget (Howard and Ruder, ACL 2018, ULMFiT, on
layer-wise fine-tuning; Lee et al., arXiv:1911.03090, "What would Elsa do?", who find that
training only the top quarter of BERT's layers keeps most of full fine-tuning's accuracy). Here
all-mpnet-base-v2 (12 layers) is the default encoder and its top 2 layers are trained: the frozen
lower layers run once per training chunk, their output is kept in memory, and every epoch runs
only the top layers, mean pooling and the head on it. One fit on ~5k sentences then costs about as
much as one MiniLM fine-tune on 2 cores.

The saved model is the trained top layers and head as ``top.safetensors`` (no pickle), loaded
over the installed encoder, whose sha256 is recorded and checked (:mod:`stance.models.hf`).
Text longer than ``max_length`` tokens is split into chunks as in :mod:`stance.models.transformer`.
"""

from __future__ import annotations

import contextlib
import time
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
from stance.models.encoder import check_segments
from stance.models.transformer import PREDICT_MAX_BATCH, PREDICT_MAX_TOKENS, class_weights

WEIGHTS = "top.safetensors"


class _FrozenDone(Exception):
    """Raised by the hook on the first trained layer: the frozen layers' work is done."""


def _layers(model: Any) -> Any:
    """The encoder's ``ModuleList`` of transformer layers (BERT and MPNet keep it at ``encoder.layer``)."""
    return model.encoder.layer


def _trainable(model: Any, first_top: int, head: Any) -> Any:
    """One module holding what is trained (``top.<k>.*`` layers and ``head.*``), for the optimiser and the file."""
    import torch

    module = torch.nn.Module()
    module.top = torch.nn.ModuleList(list(_layers(model))[first_top:])
    module.head = head
    return module


def _run_top(top: Any, hidden: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    for layer in top:
        out = layer(hidden, *args, **kwargs)
        hidden = out[0] if isinstance(out, tuple) else out
    return hidden


class PartialFineTuneModel(StanceModel):
    """The top ``top_layers`` layers of a packaged encoder plus a linear head on mean-pooled tokens, fine-tuned.

    ``learning_rate`` is the pretrained layers' rate and ``head_learning_rate`` the new head's
    (AdamW, linear warm-up and decay, :mod:`stance.models.training`); class-weighted cross-entropy.
    Training batches are fixed groups of ``batch_size`` chunks of similar length (their frozen
    states are computed once); each epoch visits the groups in a new order drawn from the seed.
    """

    family = "partial-finetune"
    backends = ("torch-fp32",)

    def __init__(
        self,
        encoder: str = "mpnet",
        top_layers: int = 2,
        epochs: int = 3,
        learning_rate: float = 3e-5,
        head_learning_rate: float = 1e-3,
        batch_size: int = 32,
        max_length: int = 128,
        warmup_ratio: float = 0.1,
        weight_decay: float = 0.01,
        use_context: bool = False,
        context_tokens: int = 48,
        seed: int = 0,
    ) -> None:
        super().__init__(seed)
        hf.source(encoder)  # raises ValueError for an unknown encoder
        if top_layers < 1 or epochs < 1 or batch_size < 1:
            raise ValueError(f"top_layers, epochs and batch_size must be at least 1, got {top_layers}, {epochs}, "
                             f"{batch_size}")
        if learning_rate <= 0 or head_learning_rate <= 0:
            raise ValueError(f"learning rates must be positive, got {learning_rate} and {head_learning_rate}")
        # the `encoder` argument (a name) shadows the module here
        check_segments(max_length, use_context, context_tokens)
        self.encoder = encoder
        self.top_layers = top_layers
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.head_learning_rate = head_learning_rate
        self.batch_size = batch_size
        self.max_length = max_length
        self.warmup_ratio = warmup_ratio
        self.weight_decay = weight_decay
        self.use_context = use_context
        self.context_tokens = context_tokens

    # ------------------------------------------------------------------ pieces

    def _load_encoder(self) -> None:
        """A private copy of the encoder (its top layers get trained weights) and a new head."""
        import torch

        self.tokenizer_, self.model_ = hf.from_pretrained(hf.encoder_dir(self.encoder), "AutoModel")
        n_layers = len(_layers(self.model_))
        if self.top_layers > n_layers:
            raise ValueError(f"top_layers={self.top_layers} but encoder {self.encoder!r} has {n_layers} layers")
        self.first_top_ = n_layers - self.top_layers
        self.head_ = torch.nn.Linear(int(self.model_.config.hidden_size), len(LABELS))
        for parameter in self.model_.parameters():
            parameter.requires_grad_(False)
        self.trainable_ = _trainable(self.model_, self.first_top_, self.head_)
        for parameter in self.trainable_.parameters():
            parameter.requires_grad_(True)

    def _chunks(self, texts: list[str], contexts: Sequence[str] | None) -> tuple[list[list[int]], list[int]]:
        return encoder.tokenize_chunks(self.tokenizer_, texts, self.max_length,
                                       contexts if self.use_context else None, self.context_tokens)

    def _frozen_states(self, chunks: list[list[int]], batches: list[np.ndarray]) -> list[tuple[Any, ...]]:
        """Per batch: the input of the first trained layer, that layer's other arguments, and the mask.

        A forward pre-hook on the first trained layer records what it would be called with (hidden
        states, attention mask, and for MPNet the relative position bias) and stops the pass there.
        The hidden states come first and by position in BERT and MPNet layers; the hook checks that.
        Raises ``RuntimeError`` if the hook did not see a batch (an encoder whose layers it cannot reach).
        """
        import torch

        captured: dict[str, Any] = {}

        def hook(_module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            captured["args"], captured["kwargs"] = args, kwargs
            raise _FrozenDone

        states = []
        handle = _layers(self.model_)[self.first_top_].register_forward_pre_hook(hook, with_kwargs=True)
        try:
            with torch.no_grad():
                for batch in batches:
                    captured.clear()
                    inputs = encoder.pad_batch(self.tokenizer_, [chunks[i] for i in batch])
                    with contextlib.suppress(_FrozenDone):
                        self.model_(**inputs)
                    args = captured.get("args")
                    if not args or not torch.is_tensor(args[0]) or args[0].shape[:2] != inputs["input_ids"].shape:
                        raise RuntimeError(f"encoder {self.encoder!r}: layer {self.first_top_} was not called with "
                                           "hidden states first; partial fine-tuning cannot cache its inputs")
                    states.append((args[0], tuple(args[1:]), dict(captured["kwargs"]), inputs["attention_mask"]))
        finally:
            handle.remove()
        return states

    def _logits(self, hidden: Any, args: tuple[Any, ...], kwargs: dict[str, Any], mask: Any) -> Any:
        pooled = encoder.mean_pool(_run_top(self.trainable_.top, hidden, args, kwargs), mask)
        return self.head_(pooled)

    # ------------------------------------------------------------------ contract

    def fit(self, texts: Sequence[str], labels: Sequence[str], contexts: Sequence[str] | None = None
            ) -> PartialFineTuneModel:
        """Train the top layers and head on ``texts``/``labels`` from the installed encoder's weights.

        Runs on :attr:`threads` torch threads (``None``: torch's setting); the same seed gives the
        same model and no process-wide generator or setting is left changed. The frozen states of
        every training chunk are held in memory for the fit (for mpnet about 0.3 MB per 50-token
        chunk: hidden states and the relative position bias; ~0.5 GB for the ~5k shipped training
        sentences). Raises as :func:`~stance.models.base.check_fit_inputs` does, and
        :class:`~stance.models.hf.EncoderNotInstalledError` when the encoder is not installed.
        """
        texts, y = check_fit_inputs(texts, labels)
        import torch

        start = time.perf_counter()
        with encoder.torch_threads(self.threads), training.seeded_torch(self.seed):
            # the head's initial weights come from the seeded fork of torch's generator
            self._load_encoder()
            self.present_ = [int(c) for c in np.unique(y)]
            chunks, owners = self._chunks(texts, contexts)
            chunk_y = torch.tensor(y[np.asarray(owners)])
            batches = encoder.length_batches([len(c) for c in chunks], self.batch_size)
            states = self._frozen_states(chunks, batches)
            training.progress(f"partial-finetune: frozen states of {len(chunks)} chunks, "
                              f"{time.perf_counter() - start:.0f}s")
            loss_fn = torch.nn.CrossEntropyLoss(weight=torch.tensor(class_weights(y), dtype=torch.float32))

            def batch_loss(which: np.ndarray) -> torch.Tensor:
                hidden, args, kwargs, mask = states[int(which[0])]
                return loss_fn(self._logits(hidden, args, kwargs, mask), chunk_y[batches[int(which[0])]])

            training.train(self.trainable_, len(batches), batch_loss, epochs=self.epochs, batch_size=1,
                           learning_rate=self.learning_rate, rng=np.random.default_rng(self.seed),
                           warmup_ratio=self.warmup_ratio, weight_decay=self.weight_decay,
                           name="partial-finetune", unit="batches",
                           prefix_learning_rates={"head.": self.head_learning_rate})
        for parameter in self.trainable_.parameters():
            parameter.requires_grad_(False)
        self.metadata["encoder"] = hf.encoder_reference(self.encoder)
        self.metadata["present_classes"] = [LABELS[c] for c in self.present_]
        self.metadata["train_seconds"] = round(time.perf_counter() - start, 1)
        return self

    def predict_proba(self, texts: Sequence[str], contexts: Sequence[str] | None = None) -> np.ndarray:
        """``(n, 3)`` probabilities in ``LABELS`` order; long texts are chunked and averaged.

        The whole encoder (frozen lower layers, trained top layers) runs on batches of at most
        :data:`~stance.models.transformer.PREDICT_MAX_TOKENS` padded tokens. Labels absent from the
        training set get probability 0. Raises ``TypeError`` naming the position of a non-str text.
        """
        texts = check_texts(texts)
        if not texts:
            return np.zeros((0, len(LABELS)))
        import torch

        chunks, owners = self._chunks(texts, contexts)
        chunk_proba = np.zeros((len(chunks), len(LABELS)))
        self.model_.eval()
        self.head_.eval()
        with encoder.torch_threads(self.threads), torch.inference_mode():
            for batch in encoder.token_batches([len(c) for c in chunks], PREDICT_MAX_TOKENS, PREDICT_MAX_BATCH):
                inputs = encoder.pad_batch(self.tokenizer_, [chunks[i] for i in batch])
                hidden = self.model_(**inputs).last_hidden_state
                logits = self.head_(encoder.mean_pool(hidden, inputs["attention_mask"]))[:, self.present_].double()
                chunk_proba[batch] = expand_proba(torch.softmax(logits, dim=-1).numpy(), self.present_)
        return average_chunks(chunk_proba, owners, len(texts))[0]

    def _save(self, folder: Path) -> None:
        from safetensors.torch import save_file

        state = {name: tensor.detach().contiguous() for name, tensor in self.trainable_.state_dict().items()}
        save_file(state, str(folder / WEIGHTS))
        # written into config.json by the base class after this returns
        self.metadata["present_classes"] = [LABELS[c] for c in self.present_]
        self.metadata["top_sha256"] = hf.file_sha256(folder / WEIGHTS)

    @classmethod
    def _load(cls, folder: Path, config: dict[str, Any]) -> PartialFineTuneModel:
        from safetensors.torch import load_file

        from stance.models.base import ModelNotFoundError

        path = folder / WEIGHTS
        if not path.exists():
            raise ModelNotFoundError(f"{path} is missing; retrain the model (`stance train`)")
        if hf.file_sha256(path) != config.get("top_sha256"):
            raise ValueError(f"{path} does not match the sha256 in its config.json")
        hf.check_encoder_reference(config.get("encoder"), str(folder))
        model = cls(**config["params"])
        if config["encoder"].get("encoder") != model.encoder:
            raise ValueError(f"{folder}: params name encoder {model.encoder!r} but the weights were trained on "
                             f"{config['encoder'].get('encoder')!r}")
        # the head built here is overwritten below; the fork keeps the caller's generator untouched
        with training.seeded_torch(model.seed):
            model._load_encoder()
        state = load_file(str(path))
        expected = model.trainable_.state_dict()
        wrong = sorted(set(state) ^ set(expected)) + sorted(
            k for k in set(state) & set(expected)
            if state[k].shape != expected[k].shape or state[k].dtype != expected[k].dtype)
        if wrong:
            raise ValueError(f"{path} does not fit a {model.top_layers}-layer top of {model.encoder!r}: "
                             f"{len(wrong)} missing, extra or misshapen tensors, e.g. {wrong[:3]}")
        model.trainable_.load_state_dict(state, strict=True)
        for parameter in model.trainable_.parameters():
            parameter.requires_grad_(False)
        model.model_.eval()
        model.head_.eval()
        model.present_ = [LABEL_TO_ID[label] for label in config.get("present_classes", LABELS)]
        return model
