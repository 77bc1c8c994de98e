"""The library leaves the process as it found it: environment, torch threads, random generators.

``import stance`` pulls in no torch; importing it and predicting with a saved neural model set no
environment variable (checked in a fresh interpreter, without the Hugging Face offline switches,
so the weights must load from local files on their own); a fit or prediction changes torch's
thread count only while it runs, and only when asked; a fit draws on no global random state and
leaves it as it was, and the same seed gives the same model. Tiny models (6 sentences, one epoch).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from stance.models import encoder, load_model
from stance.models.embedding import EmbeddingLogRegModel, SetFitModel
from stance.models.ensemble import EnsembleModel
from stance.models.transformer import TransformerModel

ROOT = Path(__file__).resolve().parents[1]
TEXTS = [
    "Platforms must scan every message to find child abuse material.",
    "Law enforcement needs access to messages to stop predators.",
    "End-to-end encryption protects everyone's privacy and must not be weakened.",
    "A backdoor for the police is a backdoor for criminals too.",
    "The bill was debated in parliament on Tuesday.",
    "The committee will meet again next month.",
]
LABELS_6 = ["pro-scanning"] * 2 + ["pro-encryption"] * 2 + ["neutral"] * 2
TINY = {"epochs": 1, "batch_size": 4, "max_length": 32, "learning_rate": 1e-4}
# variables that would make a hub download impossible; the library must not need (or set) them
OFFLINE_SWITCHES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")


@pytest.fixture(autouse=True)
def _private_cache_and_threads(tmp_path_factory, monkeypatch):
    """Embedding cache in a temporary folder; torch's thread count put back after each test."""
    folder = tmp_path_factory.getbasetemp() / "side-effects-cache"
    monkeypatch.setattr(encoder, "cache_dir", lambda: folder)
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict[str, Path]:
    """A tiny fine-tuned transformer and a frozen-encoder head (no disk cache), saved."""
    root = tmp_path_factory.mktemp("side-effect-models")
    return {
        "transformer": TransformerModel(**TINY, seed=2).fit(TEXTS, LABELS_6).save(root / "transformer"),
        "embedding": EmbeddingLogRegModel(cache=False).fit(TEXTS, LABELS_6).save(root / "embedding"),
    }


def _run_python(code: str, *args: str) -> dict:
    """Run ``code`` in a fresh interpreter (this checkout first on the path, no offline switches); its JSON."""
    env = {k: v for k, v in os.environ.items() if k not in OFFLINE_SWITCHES}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


ENV_DIFF = """
def env_diff(before):
    after = dict(os.environ)
    return {k: [before.get(k), after.get(k)] for k in set(before) | set(after) if before.get(k) != after.get(k)}
"""


def _record_threads(monkeypatch) -> list[int]:
    """Torch's thread count at every forward pass of fit and predict: at each padded batch of the
    fine-tuned family, and at each pooling of an encoder's output (frozen encoders, SetFit)."""
    seen: list[int] = []
    for name in ("pad_batch", "mean_pool"):
        original = getattr(encoder, name)

        def recording(*args, _original=original, **kwargs):
            seen.append(torch.get_num_threads())
            return _original(*args, **kwargs)

        monkeypatch.setattr(encoder, name, recording)
    return seen


def _global_states() -> tuple:
    return (random.getstate(), np.random.get_state(), torch.get_rng_state(),
            torch.are_deterministic_algorithms_enabled())


def _same_states(a: tuple, b: tuple) -> bool:
    return (a[0] == b[0] and all(np.array_equal(x, y) for x, y in zip(a[1], b[1]))
            and torch.equal(a[2], b[2]) and a[3] == b[3])


# ---------------------------------------------------------------- environment and imports


def test_import_stance_loads_no_torch_and_sets_no_environment():
    found = _run_python(
        "import json, os, sys\nbefore = dict(os.environ)\nimport stance\n" + ENV_DIFF
        + "heavy = [m for m in ('torch', 'transformers', 'ray') if m in sys.modules]\n"
        "print(json.dumps({'heavy': heavy, 'changed': env_diff(before)}))"
    )
    assert found == {"heavy": [], "changed": {}}


def test_predicting_with_saved_neural_models_sets_no_environment(saved):
    code = (
        "import json, os, sys\nbefore = dict(os.environ)\nimport stance\nfrom stance.models import load_model\n"
        + ENV_DIFF
        + "out = {}\n"
        "for folder in sys.argv[1:]:\n"
        "    proba = load_model(folder).predict_proba(['Scanning breaks encryption.', 'The vote is on Monday.'])\n"
        "    out[folder] = {'shape': list(proba.shape), 'changed': env_diff(before)}\n"
        "out['torch'] = 'torch' in sys.modules\n"
        "print(json.dumps(out))"
    )
    found = _run_python(code, str(saved["transformer"]), str(saved["embedding"]))
    assert found.pop("torch") is True  # the check ran where torch and transformers were really used
    assert found == {str(saved[k]): {"shape": [2, 3], "changed": {}} for k in ("transformer", "embedding")}


# ---------------------------------------------------------------- torch threads


def test_prediction_leaves_the_thread_count_unless_asked(saved, monkeypatch):
    model = load_model(saved["transformer"])
    seen = _record_threads(monkeypatch)
    torch.set_num_threads(1)
    model.predict_proba(TEXTS)
    assert set(seen) == {1} and torch.get_num_threads() == 1
    seen.clear()
    model.threads = 2
    model.predict_proba(TEXTS)
    assert set(seen) == {2}  # the asked value, during the call
    assert torch.get_num_threads() == 1  # the caller's, after it


def test_encode_and_embedding_models_follow_threads(saved, monkeypatch):
    seen = _record_threads(monkeypatch)
    torch.set_num_threads(1)
    encoder.encode(TEXTS[:2], cache=False)
    assert set(seen) == {1} and torch.get_num_threads() == 1
    seen.clear()
    encoder.encode(TEXTS[2:4], cache=False, threads=2)
    assert set(seen) == {2} and torch.get_num_threads() == 1
    # an ensemble hands its thread count to its members
    ensemble = EnsembleModel([{"family": "tfidf", "params": {}},
                              {"family": "embedding-logreg", "params": {"cache": False}}]).fit(TEXTS, LABELS_6)
    seen.clear()
    ensemble.threads = 2
    assert ensemble.predict_proba(TEXTS[:3]).shape == (3, 3)
    assert set(seen) == {2} and torch.get_num_threads() == 1


@pytest.mark.parametrize("bad, error", [(0, ValueError), (-2, ValueError), (1.5, TypeError), (True, TypeError)])
def test_a_bad_thread_count_is_refused_and_changes_nothing(bad, error):
    torch.set_num_threads(1)
    with pytest.raises(error), encoder.torch_threads(bad):
        pass
    assert torch.get_num_threads() == 1


def test_threads_is_not_a_saved_hyper_parameter(saved, tmp_path):
    model = load_model(saved["embedding"])
    model.threads = 2
    assert "threads" not in model.get_params()
    config = json.loads((model.save(tmp_path / "again") / "config.json").read_text())
    assert "threads" not in config["params"] and "threads" not in config


# ---------------------------------------------------------------- fitting: threads and random generators


def test_transformer_fit_uses_its_seed_only_and_leaves_global_state(monkeypatch):
    seen = _record_threads(monkeypatch)
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    torch.set_num_threads(1)
    before = _global_states()
    first = TransformerModel(**TINY, seed=5).fit(TEXTS, LABELS_6)
    assert _same_states(before, _global_states())  # no generator consumed, re-seeded or switched
    assert set(seen) == {1} and torch.get_num_threads() == 1
    # other global seeds and another caller thread count: the same model when it asks for 1 thread
    random.seed(2)
    np.random.seed(2)
    torch.manual_seed(2)
    torch.set_num_threads(2)
    seen.clear()
    again = TransformerModel(**TINY, seed=5)
    again.threads = 1
    again.fit(TEXTS, LABELS_6)
    assert set(seen) == {1} and torch.get_num_threads() == 2
    first.threads = 1  # predictions on one thread too: another count may reorder float sums
    assert np.array_equal(first.predict_proba(TEXTS), again.predict_proba(TEXTS))
    other = TransformerModel(**TINY, seed=6)
    other.threads = 1
    assert not np.allclose(other.fit(TEXTS, LABELS_6).predict_proba(TEXTS), first.predict_proba(TEXTS))


def test_setfit_fit_is_repeatable_and_leaves_global_state():
    torch.set_num_threads(1)
    settings = {"pairs_per_sentence": 2, "max_pairs": 8, "batch_size": 4, "max_length": 32, "seed": 3}
    before = _global_states()
    first = SetFitModel(**settings).fit(TEXTS, LABELS_6)
    assert _same_states(before, _global_states())
    assert torch.get_num_threads() == 1
    torch.manual_seed(99)  # a caller's own draws must not change the model
    torch.rand(10)
    again = SetFitModel(**settings).fit(TEXTS, LABELS_6)
    assert np.array_equal(first.predict_proba(TEXTS), again.predict_proba(TEXTS))


def test_transformers_logging_is_restored_after_loading(saved):
    from transformers.utils import logging

    logging.set_verbosity_info()
    try:
        load_model(saved["transformer"])
        assert logging.get_verbosity() == logging.INFO
        assert logging.is_progress_bar_enabled()
    finally:
        logging.set_verbosity_warning()
