"""Partial fine-tuning of mpnet (stance.models.partial) against the model contract.

Tiny settings (12 sentences, the top 2 of 12 layers, a few optimiser steps) keep the file to
about a minute on 2 CPU cores; the installed mpnet weights are used (``make setup`` installs them).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tiny_corpus import LABELS_12, TEXTS

from stance.labels import LABELS
from stance.models import ModelNotFoundError, hf, load_model, training
from stance.models.ensemble import EnsembleModel
from stance.models.partial import WEIGHTS, PartialFineTuneModel

LONG = " ".join(["the"] * 300) + " " + TEXTS[0]
TINY = {"top_layers": 2, "epochs": 2, "batch_size": 4, "max_length": 32}


@pytest.fixture(scope="module")
def model() -> PartialFineTuneModel:
    fitted = PartialFineTuneModel(**TINY, seed=3)
    fitted.threads = 2
    return fitted.fit(TEXTS, LABELS_12)


def test_probabilities_are_a_full_distribution(model):
    proba = model.predict_proba([*TEXTS, LONG])
    assert proba.shape == (13, 3)
    assert np.allclose(proba.sum(axis=1), 1)
    assert model.predict_proba([]).shape == (0, 3)
    assert model.classes_ == LABELS


def test_only_the_top_layers_and_head_are_trained(model):
    _, packaged = hf.from_pretrained(hf.encoder_dir("mpnet"), "AutoModel")
    layers, original = model.model_.encoder.layer, packaged.encoder.layer
    assert len(layers) == 12 and model.first_top_ == 10
    for k in range(10):
        for (name, trained), (_, start) in zip(layers[k].named_parameters(), original[k].named_parameters()):
            assert torch.equal(trained, start), f"frozen layer {k} changed in {name}"
    for name, trained in model.model_.named_parameters():
        if not name.startswith("encoder.layer."):  # embeddings, the relative position bias
            assert torch.equal(trained, packaged.get_parameter(name)), name
    for k in (10, 11):
        assert any(not torch.equal(a, b) for a, b in zip(layers[k].parameters(), original[k].parameters()))
    # after fit every module is back in eval mode (no dropout at prediction)
    assert not any(module.training for module in model.model_.modules()) and not model.head_.training


def test_cached_frozen_states_give_what_the_whole_encoder_gives(model):
    # training runs the top layers on states captured before them; prediction runs the whole
    # encoder: both must be the same network
    chunks, _ = model._chunks(TEXTS, None)
    batches = [np.arange(len(chunks))]
    with torch.inference_mode():
        hidden, args, kwargs, mask = model._frozen_states(chunks, batches)[0]
        logits = model._logits(hidden, args, kwargs, mask)
    from_states = torch.softmax(logits.double(), dim=-1).numpy()
    assert np.allclose(from_states, model.predict_proba(TEXTS), atol=1e-5)


def test_training_fits_the_training_sentences():
    fitted = PartialFineTuneModel(top_layers=1, epochs=12, batch_size=12, max_length=32, learning_rate=1e-4,
                                  head_learning_rate=1e-2, warmup_ratio=0.0, seed=1)
    fitted.threads = 2
    fitted.fit(TEXTS, LABELS_12)
    right = sum(p == gold for p, gold in zip(fitted.predict(TEXTS), LABELS_12))
    assert right >= 11


def test_save_and_reload_identical(model, tmp_path):
    folder = model.save(tmp_path / "partial")
    saved = sorted(p.name for p in folder.iterdir())
    assert saved == ["config.json", WEIGHTS]  # no pickle, no copy of the encoder
    from safetensors import safe_open

    with safe_open(str(folder / WEIGHTS), "pt") as handle:
        keys = set(handle.keys())
    assert {k.split(".")[0] + "." + k.split(".")[1] for k in keys if k.startswith("top.")} == {"top.0", "top.1"}
    assert {k for k in keys if not k.startswith("top.")} == {"head.weight", "head.bias"}
    config = json.loads((folder / "config.json").read_text())
    assert config["family"] == "partial-finetune"
    assert config["encoder"]["weights_sha256"] == hf.weights_sha256("mpnet")
    assert config["params"]["top_layers"] == 2 and config["seed"] == 3
    reloaded = load_model(folder)
    assert isinstance(reloaded, PartialFineTuneModel)
    assert np.array_equal(reloaded.predict_proba([*TEXTS, LONG]), model.predict_proba([*TEXTS, LONG]))


def test_damaged_or_foreign_files_are_refused(model, tmp_path):
    folder = model.save(tmp_path / "partial")
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text())
    config["encoder"]["weights_sha256"] = "0" * 64
    config_path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="installed weights"):
        load_model(folder)
    model.save(folder)
    with (folder / WEIGHTS).open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ValueError, match="sha256"):
        load_model(folder)
    (folder / WEIGHTS).unlink()
    with pytest.raises(ModelNotFoundError, match="stance train"):
        load_model(folder)


def test_a_top_of_another_depth_is_refused(model, tmp_path):
    folder = model.save(tmp_path / "partial")
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text())
    config["params"]["top_layers"] = 1  # the file holds two layers, hash still matching
    config_path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="does not fit a 1-layer top"):
        load_model(folder)


def test_same_seed_same_model_and_no_process_state_changed(model):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the model asks for 2: the caller's 1 must come back
    try:
        state, deterministic = torch.random.get_rng_state(), torch.are_deterministic_algorithms_enabled()
        again = PartialFineTuneModel(**TINY, seed=3)
        again.threads = 2
        again.fit(TEXTS, LABELS_12)
        reloaded_proba = again.predict_proba(TEXTS)
        assert torch.equal(torch.random.get_rng_state(), state)
        assert torch.get_num_threads() == 1
        assert torch.are_deterministic_algorithms_enabled() == deterministic
    finally:
        torch.set_num_threads(threads)
    assert np.array_equal(reloaded_proba, model.predict_proba(TEXTS))
    other = PartialFineTuneModel(**TINY, seed=4)
    other.threads = 2
    assert not np.array_equal(other.fit(TEXTS, LABELS_12).predict_proba(TEXTS), model.predict_proba(TEXTS))


def test_long_text_is_chunked_not_truncated(model):
    chunks, owners = model._chunks([LONG, TEXTS[0]], None)
    assert owners.count(0) > 1 and owners.count(1) == 1
    proba = model.predict_proba([LONG, " ".join(["the"] * 300)])
    assert not np.allclose(proba[0], proba[1], atol=1e-6)


def test_missing_class_gets_zero_probability():
    keep = [i for i, label in enumerate(LABELS_12) if label != "pro-encryption"]
    fitted = PartialFineTuneModel(**TINY).fit([TEXTS[i] for i in keep], [LABELS_12[i] for i in keep])
    proba = fitted.predict_proba(TEXTS)
    assert np.all(proba[:, LABELS.index("pro-encryption")] == 0)
    assert np.allclose(proba.sum(axis=1), 1)


def test_bad_input_and_settings_are_refused(model):
    with pytest.raises(TypeError, match="position 1"):
        model.predict_proba(["fine", None])
    with pytest.raises(TypeError, match="position 2"):
        PartialFineTuneModel(**TINY).fit(["a", "b", None], ["neutral"] * 3)
    with pytest.raises(ValueError, match="empty"):
        PartialFineTuneModel(**TINY).fit([], [])
    with pytest.raises(ValueError, match="2 texts but 1 labels"):
        PartialFineTuneModel(**TINY).fit(["a", "b"], ["neutral"])
    with pytest.raises(ValueError, match="unknown label"):
        PartialFineTuneModel(**TINY).fit(["a"], ["maybe"])
    with pytest.raises(ValueError, match="top_layers"):
        PartialFineTuneModel(top_layers=0)
    with pytest.raises(ValueError, match="at least 1"):
        PartialFineTuneModel(epochs=0)
    with pytest.raises(ValueError, match="at least 1"):
        PartialFineTuneModel(batch_size=0)
    with pytest.raises(ValueError, match="positive"):
        PartialFineTuneModel(head_learning_rate=0.0)
    with pytest.raises(ValueError, match="max_length"):
        PartialFineTuneModel(max_length=4)
    with pytest.raises(ValueError, match="context_tokens"):
        PartialFineTuneModel(max_length=32, use_context=True, context_tokens=17)
    reading_context = PartialFineTuneModel(**TINY, use_context=True, context_tokens=8)
    reading_context.tokenizer_ = model.tokenizer_
    with pytest.raises(TypeError, match="position 0"):
        reading_context._chunks(["a"], [None])
    with pytest.raises(ValueError, match="1 contexts for 2 texts"):
        reading_context._chunks(["a", "b"], ["c"])
    plain, _ = model._chunks(["a"], ["the headline"])  # a model without context ignores it
    with_context, _ = reading_context._chunks(["a"], ["the headline"])
    assert len(with_context[0]) > len(plain[0])
    with pytest.raises(ValueError, match="has 12 layers"):
        PartialFineTuneModel(top_layers=13).fit(TEXTS, LABELS_12)
    with pytest.raises(ValueError, match="unknown encoder"):
        PartialFineTuneModel(encoder="bert-huge")
    with pytest.raises(ValueError, match="torch-fp32"):
        model.with_backend("onnx-int8")
    assert np.array_equal(model.with_backend("torch-fp32").predict_proba(TEXTS), model.predict_proba(TEXTS))


def test_member_of_an_ensemble_saves_and_reloads(tmp_path):
    members = [{"family": "tfidf", "params": {"classifier": "logreg", "C": 10.0}},
               {"family": "partial-finetune", "params": {**TINY, "epochs": 1}}]
    ensemble = EnsembleModel(members, seed=2).fit(TEXTS, LABELS_12)
    assert ensemble.backends == ("torch-fp32",)
    proba = ensemble.predict_proba(TEXTS)
    parts = np.mean([m.predict_proba(TEXTS) for m in ensemble.models_], axis=0)
    assert np.allclose(proba, parts)
    reloaded = load_model(ensemble.save(tmp_path / "ensemble"))
    assert np.array_equal(reloaded.predict_proba(TEXTS), proba)


def test_prefix_learning_rates_give_the_head_its_own_rate():
    net = torch.nn.Module()
    net.body = torch.nn.Linear(2, 2)
    net.head = torch.nn.Linear(2, 3)
    optimizer, _ = training.optimizer_and_schedule(net, 1e-5, 10, prefix_learning_rates={"head.": 1e-3})
    rates = {id(p): group["initial_lr"] for group in optimizer.param_groups for p in group["params"]}
    assert rates[id(net.head.weight)] == rates[id(net.head.bias)] == 1e-3
    assert rates[id(net.body.weight)] == rates[id(net.body.bias)] == 1e-5
    decay = {id(p): group["weight_decay"] for group in optimizer.param_groups for p in group["params"]}
    assert decay[id(net.head.weight)] == 0.01 and decay[id(net.head.bias)] == 0.0
