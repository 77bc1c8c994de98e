"""The one training loop of the neural models (fine-tuning and SetFit), and its random generators.

:func:`train` runs AdamW with a linear warm-up and decay over epochs of shuffled mini-batches;
the caller supplies only how a batch of item indices becomes a loss. Randomness never touches a
process-wide generator for good: batch order comes from a :class:`numpy.random.Generator` the
caller makes from the model's seed, and what cannot take a generator (a new head's initial
weights, dropout) runs inside :func:`seeded_torch`, which forks torch's global generator, seeds
the fork and gives the caller's state back on exit. The same seed thus gives the same model, and
the caller's random streams are as they were.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np


@contextmanager
def seeded_torch(seed: int) -> Iterator[None]:
    """Inside: torch's CPU generator is seeded with ``seed`` and deterministic kernels are asked for.

    On exit the generator's state and the deterministic-algorithms setting are what they were.
    ``warn_only``: on CPU the ops used here are deterministic anyway; an op without a
    deterministic kernel should warn rather than stop a long run.
    """
    import torch

    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True, warn_only=True)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


def optimizer_and_schedule(
    model: Any, learning_rate: float, total_steps: int, warmup_ratio: float = 0.1, weight_decay: float = 0.01,
    prefix_learning_rates: Mapping[str, float] | None = None,
) -> tuple[Any, Any]:
    """AdamW (no decay on biases and LayerNorm weights) and a linear warm-up then linear decay to 0.

    ``prefix_learning_rates``: parameters whose name starts with a key learn at that rate instead
    of ``learning_rate`` (e.g. a new head faster than pretrained layers; the first matching key in
    the mapping's order wins); the schedule scales every rate.
    """
    import torch

    rates = dict(prefix_learning_rates or {})
    groups: dict[tuple[float, bool], list[Any]] = {}
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            rate = next((r for prefix, r in rates.items() if name.startswith(prefix)), learning_rate)
            decays = not (name.endswith("bias") or "LayerNorm" in name)
            groups.setdefault((rate, decays), []).append(parameter)
    optimizer = torch.optim.AdamW(
        [{"params": params, "lr": rate, "weight_decay": weight_decay if decays else 0.0}
         for (rate, decays), params in groups.items()],
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
    print(message, file=sys.stderr, flush=True)


def train(
    model: Any,
    n_items: int,
    batch_loss: Callable[[np.ndarray], Any],
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    rng: np.random.Generator,
    warmup_ratio: float = 0.1,
    weight_decay: float = 0.01,
    shuffle_first_epoch: bool = True,
    name: str = "model",
    unit: str = "items",
    prefix_learning_rates: Mapping[str, float] | None = None,
) -> list[float]:
    """Train ``model`` (a torch module) for ``epochs`` passes over ``n_items`` items; returns each epoch's mean loss.

    Each epoch visits the items in an order drawn from ``rng`` (the first epoch in index order
    when ``shuffle_first_epoch`` is False, for items already shuffled) in batches of
    ``batch_size``; ``batch_loss(indices)`` returns the batch's scalar loss tensor. Gradients are
    clipped to norm 1; the schedule is :func:`optimizer_and_schedule` (``prefix_learning_rates`` as
    there). The model is left in eval
    mode. Progress goes to stderr about four times per epoch. Raises ``ValueError`` for a
    ``batch_size`` or ``epochs`` below 1 or a negative ``n_items``. Wrap the call in
    :func:`seeded_torch` for repeatable dropout.
    """
    import torch

    if batch_size < 1 or epochs < 1 or n_items < 0:
        raise ValueError(f"need batch_size >= 1, epochs >= 1 and n_items >= 0; got {batch_size}, {epochs}, {n_items}")
    steps_per_epoch = -(-n_items // batch_size)
    optimizer, schedule = optimizer_and_schedule(
        model, learning_rate, max(1, steps_per_epoch * epochs), warmup_ratio, weight_decay, prefix_learning_rates
    )
    report_every = max(1, steps_per_epoch // 4)
    epoch_losses: list[float] = []
    model.train()
    start = time.perf_counter()
    for epoch in range(epochs):
        order = rng.permutation(n_items) if epoch > 0 or shuffle_first_epoch else np.arange(n_items)
        losses: list[float] = []
        for step in range(steps_per_epoch):
            loss = batch_loss(order[step * batch_size : (step + 1) * batch_size])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            losses.append(loss.item())
            if (step + 1) % report_every == 0 and step + 1 < steps_per_epoch:
                progress(f"{name} epoch {epoch + 1}/{epochs}: step {step + 1}/{steps_per_epoch}, "
                         f"loss {np.mean(losses):.4f}, {time.perf_counter() - start:.0f}s")
        epoch_losses.append(float(np.mean(losses)) if losses else float("nan"))
        progress(f"{name} epoch {epoch + 1}/{epochs}: {n_items} {unit}, {steps_per_epoch} steps, "
                 f"loss {epoch_losses[-1]:.4f}, {time.perf_counter() - start:.0f}s")
    model.eval()
    return epoch_losses
