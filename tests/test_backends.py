"""Inference backends: the ONNX export and its provenance checks, embeddings of each backend, the
embedding cache kept to torch fp32, the default chosen by the recorded rule, and the rule itself.

Exports the packaged MiniLM (~15 s on 2 cores) into a temporary store once for the module.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from typer.testing import CliRunner

import stance
from stance.cli import app
from stance.evaluation.backends import MIN_AGREEMENT, choose
from stance.models import backends, encoder
from stance.models.embedding import EmbeddingLogRegModel, SetFitModel
from stance.scoring.distributed import load_payload, model_payload

TEXTS = [
    "Scanning every private message would break end-to-end encryption for everyone.",
    "Platforms must be able to detect known abuse images, even in encrypted chats.",
    "The committee will vote on the regulation next Tuesday after months of talks between the member states.",
    "Encryption protects children.",
    "Short.",
    "Police chiefs said the rollout of default encryption was a grave mistake that would blind investigators.",
]
LABELS_6 = ["pro-encryption", "pro-scanning", "neutral", "pro-encryption", "neutral", "pro-scanning"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A fresh store and cache holding MiniLM's ONNX export (made once for the module)."""
    root = tmp_path_factory.mktemp("backend-store")
    patch = pytest.MonkeyPatch()
    patch.setenv("STANCE_HOME", str(root / "home"))
    patch.setenv("STANCE_CACHE_DIR", str(root / "cache"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        backends.ensure_onnx("minilm")
    yield root
    patch.undo()


def test_unknown_backend_is_named():
    with pytest.raises(ValueError, match="unknown backend 'cuda'; choose one of torch-fp32, torch-int8"):
        backends.check_backend("cuda")
    with pytest.raises(ValueError, match="unknown backend"):
        encoder.encode(["x"], backend="cuda")


def test_export_records_its_provenance(store):
    folder = backends.onnx_dir("minilm")
    assert folder.is_relative_to(store)  # in the store, not inside site-packages
    record = json.loads((folder / backends.PROVENANCE_FILE).read_text())
    from stance.models import hf

    assert record["source_weights_sha256"] == hf.weights_sha256("minilm")
    assert record["recipe"] == backends.EXPORT_RECIPE
    assert record["int8_fp32_nodes"] == 6  # one feed-forward output projection per MiniLM layer
    for backend, graph in record["graphs"].items():
        assert hf.file_sha256(folder / graph["file"]) == graph["sha256"], backend
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_every_backend_embeds_like_torch_fp32(store):
    reference = encoder.encode(TEXTS, cache=False, name="minilm")
    for backend in backends.BACKENDS:
        vectors = encoder.encode(TEXTS, name="minilm", backend=backend)
        assert vectors.shape == (len(TEXTS), 384) and vectors.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
        cosine = (vectors * reference).sum(axis=1)
        if backend.endswith("fp32"):
            assert cosine.min() > 0.99999, backend
        else:  # int8 weights move the vectors a little, never far
            assert 0.95 < cosine.min() < 0.99999, (backend, cosine)
    assert encoder.encode([], name="minilm", backend="onnx-fp32").shape == (0, 384)


def test_only_torch_fp32_reads_and_writes_the_embedding_cache(store):
    cache = store / "cache" / "embeddings"
    before = sorted(cache.rglob("*.npy")) if cache.exists() else []
    encoder.encode(["A sentence only the ONNX backend has seen."], name="minilm", backend="onnx-fp32")
    assert (sorted(cache.rglob("*.npy")) if cache.exists() else []) == before
    encoder.encode(["A sentence only torch has seen."], name="minilm", backend="torch-fp32")
    assert len(sorted(cache.rglob("*.npy"))) == len(before) + 1


def test_an_edited_graph_is_refused_and_an_old_recipe_is_exported_again(store):
    folder = backends.onnx_dir("minilm")
    backends._session.cache_clear()
    graph = folder / backends.GRAPH_FILES["onnx-int8"]
    original = graph.read_bytes()
    graph.write_bytes(original[:-10] + b"0123456789")
    try:
        with pytest.raises(backends.ExportMismatchError, match="does not match the sha256"):
            backends.graph_path("minilm", "onnx-int8")
    finally:
        graph.write_bytes(original)
    provenance = folder / backends.PROVENANCE_FILE
    record = json.loads(provenance.read_text())
    provenance.write_text(json.dumps({**record, "recipe": "an older recipe"}))
    with pytest.warns(UserWarning, match="exporting encoder 'minilm' to ONNX"):
        backends.ensure_onnx("minilm")
    assert json.loads(provenance.read_text())["recipe"] == backends.EXPORT_RECIPE


@pytest.fixture(scope="module")
def head_model(store, tmp_path_factory):
    folder = tmp_path_factory.mktemp("head") / "minilm-head"
    EmbeddingLogRegModel(C=1.0, encoder="minilm", seed=3).fit(TEXTS, LABELS_6).save(folder)
    return folder


def test_a_loaded_model_runs_the_recorded_default_and_any_backend_on_request(head_model, monkeypatch):
    monkeypatch.setattr(backends, "_choice", lambda: {"default": {"minilm": "onnx-int8"}})
    model = stance.models.load_model(head_model)
    assert model.backend == "onnx-int8"
    monkeypatch.setattr(backends, "_choice", lambda: {})
    assert stance.models.load_model(head_model).backend == "torch-fp32"
    fp32 = stance.load(head_model, backend="torch-fp32").predict_proba(TEXTS)
    onnx = stance.load(head_model, backend="onnx-fp32")
    assert onnx.backend == "onnx-fp32" and stance.load(head_model, backend="torch-fp32").backend == "torch-fp32"
    np.testing.assert_allclose(onnx.predict_proba(TEXTS), fp32, atol=1e-4)
    labels = [p.label for p in stance.predict(TEXTS, model=head_model, backend="onnx-int8")]
    assert len(labels) == len(TEXTS)


def test_setfit_runs_on_torch_only():
    with pytest.raises(ValueError, match="runs on torch-fp32, not 'onnx-fp32'"):
        SetFitModel().with_backend("onnx-fp32")


def test_the_ray_payload_carries_the_backend(head_model):
    from stance.models.store import resolve

    ref = resolve(head_model)
    model, name, sha256 = load_payload(model_payload(ref, "onnx-fp32"))
    assert (model.backend, name, sha256) == ("onnx-fp32", ref.name, ref.sha256)


def test_cli_backend_option(head_model):
    runner = CliRunner()
    done = runner.invoke(app, ["predict", "--model", str(head_model), "--backend", "onnx-fp32",
                               "Encryption protects children."])
    assert done.exit_code == 0, done.output
    assert done.output.split("\t")[0] in stance.LABELS
    bad = runner.invoke(app, ["predict", "--backend", "gpu", "x"])
    assert bad.exit_code == 2 and "gpu" in bad.output


def _accuracy(scores: dict[str, float], agreement: float) -> dict:
    return {"scores": scores, "agreement": agreement}


def test_the_rule_takes_the_fastest_backend_that_keeps_accuracy():
    reference = {"challenge": 0.80, "contrast_test": 0.70}
    accuracy = {
        "torch-fp32": _accuracy(reference, 1.0),
        "torch-int8": _accuracy({"challenge": 0.80, "contrast_test": 0.685}, 0.99),  # contrast -0.015
        "onnx-fp32": _accuracy(reference, 1.0),
        "onnx-int8": _accuracy({"challenge": 0.805, "contrast_test": 0.70}, MIN_AGREEMENT - 0.001),
    }
    speed = {"torch-fp32": 10.0, "torch-int8": 30.0, "onnx-fp32": 12.0, "onnx-int8": 40.0}
    chosen, verdicts = choose(accuracy, speed)
    assert chosen == "onnx-fp32"
    assert verdicts["torch-int8"]["reasons"] == ["contrast_test -0.015"]
    assert verdicts["onnx-int8"]["reasons"] == ["labels agree on 98.4% < 98.5%"]
    accuracy["onnx-int8"]["agreement"] = MIN_AGREEMENT
    assert choose(accuracy, speed)[0] == "onnx-int8"
    # torch fp32 is the reference: it qualifies even when it is the slowest and nothing else does
    for backend in ("torch-int8", "onnx-fp32", "onnx-int8"):
        accuracy[backend]["agreement"] = 0.5
    assert choose(accuracy, speed)[0] == "torch-fp32"


def test_without_embedding_cache_turns_off_the_cache_of_a_copy_and_its_members_only():
    from stance.models.embedding import EmbeddingLogRegModel, without_embedding_cache
    from stance.models.ensemble import EnsembleModel
    from stance.models.tfidf import TfidfModel

    ensemble = EnsembleModel([{"family": "tfidf"}, {"family": "embedding-logreg"}])
    ensemble.models_ = [TfidfModel(), EmbeddingLogRegModel()]
    twin = without_embedding_cache(ensemble)
    assert twin is not ensemble and twin.models_[1] is not ensemble.models_[1]
    assert twin.models_[1].cache is False and not hasattr(twin.models_[0], "cache")
    assert ensemble.models_[1].cache is True  # the loaded model is left as it was
    alone = EmbeddingLogRegModel()
    assert without_embedding_cache(alone).cache is False and alone.cache is True
