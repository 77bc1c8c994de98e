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


def test_flop_count_follows_the_formula():
    import sys

    sys.path.insert(0, str(RUN_PY.parent))
    from transformer_bench import encoder_flops

    tiny = {"hidden_size": 2, "intermediate_size": 4, "num_hidden_layers": 1}
    # one token: projections 8*1*2*2 = 32 and FFN input 2*1*2*4 = 16 (int8 part); FFN output 16, attention 4*1*1*2 = 8
    assert encoder_flops(tiny, 1) == {"int8_part": 48, "fp32_part": 24, "total": 72}
    mpnet = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12}
    flops = encoder_flops(mpnet, 26)
    # linear layers dominate: about 2 FLOPs per weight per token (~85M weights in the Linear layers)
    assert 0.95 < flops["total"] / (2 * 26 * 12 * (4 * 768**2 + 2 * 768 * 3072)) < 1.05
    assert flops["int8_part"] / flops["total"] > 0.6


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


def test_transformer_backends_are_torch_only(tiny_transformer):
    assert tiny_transformer.with_backend("torch-int8").quantized_
    assert not tiny_transformer.with_backend("torch-fp32").quantized_
    with pytest.raises(ValueError, match="runs on torch-fp32, torch-int8"):
        tiny_transformer.with_backend("onnx-fp32")


def test_load_backend_is_ignored_by_the_baseline(tiny_baseline):
    plain = stance.predict("Encryption keeps us safe.", model=tiny_baseline)
    assert stance.predict("Encryption keeps us safe.", model=tiny_baseline, backend="onnx-int8") == plain
    with pytest.raises(ValueError, match="unknown backend 'gpu'"):
        stance.load(tiny_baseline, backend="gpu")


def test_the_transformer_rows_time_the_encoder_not_the_embedding_cache(tmp_path, monkeypatch):
    # stance.predict runs the object the model store keeps; the benchmark must turn off the cache of
    # that very object, or torch-fp32 (the backend with a cache) times file reads
    import sys

    from stance.models.embedding import EmbeddingLogRegModel

    sys.path.insert(0, str(RUN_PY.parent))
    from transformer_bench import uncached_in_place

    monkeypatch.setenv("STANCE_CACHE_DIR", str(tmp_path / "cache"))
    folder = EmbeddingLogRegModel(C=1.0).fit(TEXTS, LABELS_9).save(tmp_path / "elr")
    stance.predict(TEXTS, model=folder, backend="torch-fp32")  # fills the cache
    uncached_in_place(stance.load(folder, backend="torch-fp32"))

    def no_cache_reads(path):
        raise AssertionError(f"read the embedding cache: {path}")

    monkeypatch.setattr(encoder, "_cache_read", no_cache_reads)
    assert len(stance.predict(TEXTS, model=folder, backend="torch-fp32")) == len(TEXTS)
