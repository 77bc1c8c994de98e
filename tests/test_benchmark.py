"""The benchmark's helpers and the inference options it measures (token batching, int8 copies).

One tiny fine-tuning (12 sentences, one epoch): well under a minute on 2 CPU cores.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import stance
from stance.models import encoder
from stance.models.transformer import TransformerModel

RUN_PY = Path(__file__).resolve().parent.parent / "benchmarks" / "run.py"
TEXTS = [
    "Platforms must scan every message to find child abuse material.",
    "Client-side scanning is necessary to protect children online.",
    "Law enforcement needs access to messages to stop predators.",
    "End-to-end encryption protects everyone's privacy and must not be weakened.",
    "Scanning private messages breaks encryption and endangers journalists.",
    "A backdoor for the police is a backdoor for criminals too.",
    "The bill was debated in parliament on Tuesday.",
    "The regulator published its consultation in March.",
    "WhatsApp has about two billion users worldwide.",
]
LABELS_9 = ["pro-scanning"] * 3 + ["pro-encryption"] * 3 + ["neutral"] * 3


@pytest.fixture(scope="module")
def bench():
    """``benchmarks/run.py`` as a module (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location("stance_benchmark_run", RUN_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny_transformer() -> TransformerModel:
    return TransformerModel(epochs=1, batch_size=8, max_length=32, learning_rate=1e-4, seed=5).fit(TEXTS, LABELS_9)


def test_flop_count_follows_the_formula(bench):
    tiny = {"hidden_size": 2, "intermediate_size": 4, "num_hidden_layers": 1, "id2label": {0: "a", 1: "b", 2: "c"}}
    # one token: projections 8*1*2*2 = 32, feed-forward 4*1*2*4 = 32, attention 4*1*1*2 = 8; pooler 8, head 12
    assert bench.flops_per_sentence(tiny, 1) == 92
    minilm = {"hidden_size": 384, "intermediate_size": 1536, "num_hidden_layers": 6}
    by_hand = 6 * (8 * 26 * 384**2 + 4 * 26 * 384 * 1536 + 4 * 26**2 * 384) + 2 * 384**2 + 2 * 384 * 3
    assert bench.flops_per_sentence(minilm, 26) == by_hand
    # linear layers dominate: about 2 FLOPs per weight per token for MiniLM-L6 (~10.6M weights in Linear layers)
    assert 0.9 < bench.flops_per_sentence(minilm, 26) / (2 * 26 * 6 * (4 * 384**2 + 2 * 384 * 1536)) < 1.1


def test_benchmark_inputs_are_deterministic_and_sized(bench):
    sentences = bench.benchmark_sentences(1500)
    assert len(sentences) == 1500 and sentences == bench.benchmark_sentences(1500)
    assert all(s.strip() for s in sentences)
    assert len(set(sentences)) > 1000  # repeats carry varied attributions, not the same strings
    records = bench.generated_articles(600, seed=3)
    assert records == bench.generated_articles(600, seed=3)
    found = len(bench.segmented_sentences(records))
    assert 0.8 * 600 <= found <= 1.2 * 600, found


def test_token_batches_cover_every_index_within_the_budget():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 120, 500)
    batches = encoder.token_batches(lengths, max_tokens=1024, max_batch=64)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(500))
    for batch in batches:
        assert len(batch) <= 64
        assert len(batch) == 1 or len(batch) * lengths[batch].max() <= 1024
    assert encoder.token_batches([], 100) == []
    assert [b.tolist() for b in encoder.token_batches([300, 5], 100)] == [[1], [0]]  # too long: alone
    with pytest.raises(ValueError):
        encoder.token_batches([1], 0)


def test_token_batching_gives_the_same_probabilities(tiny_transformer):
    texts = TEXTS + ["Short.", " ".join(["encryption"] * 80)]
    fixed = tiny_transformer.predict_proba(texts, batch_size=2)
    budget = tiny_transformer.predict_proba(texts)
    np.testing.assert_allclose(budget, fixed, atol=1e-5)


def test_int8_copy_agrees_with_fp32_and_leaves_it_untouched(tiny_transformer, tmp_path):
    import torch

    before = tiny_transformer.predict_proba(TEXTS)
    int8 = tiny_transformer.quantized()
    after = tiny_transformer.predict_proba(TEXTS)
    np.testing.assert_array_equal(before, after)
    assert int8.quantized_ and not tiny_transformer.quantized_
    assert not any(type(m) is torch.nn.Linear for m in int8.model_.modules())
    proba = int8.predict_proba(TEXTS)
    assert np.abs(proba - before).max() < 0.05
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    confident = np.sort(before, axis=1)[:, -1] - np.sort(before, axis=1)[:, -2] > 0.05
    assert (proba.argmax(1) == before.argmax(1))[confident].all()
    with pytest.raises(ValueError, match="quantised"):
        int8.save(tmp_path / "int8")


def test_load_quantize_only_for_transformers(tiny_baseline):
    with pytest.raises(ValueError, match="only transformer"):
        stance.load(tiny_baseline, quantize=True)
    assert stance.predict("Encryption keeps us safe.", model=tiny_baseline).label is not None
