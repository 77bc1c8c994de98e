"""The model store: names resolve through a folder, the store, then the packaged default (issue 16)."""

from __future__ import annotations

import json
import shutil
import warnings

import pytest

from stance.models import ModelNotFoundError, store


@pytest.fixture()
def empty_store(tmp_path, monkeypatch):
    folder = tmp_path / "store"
    folder.mkdir()
    monkeypatch.setenv("STANCE_HOME", str(folder))
    return folder


@pytest.fixture()
def packaged(tmp_path, monkeypatch, tiny_baseline):
    """A package folder holding one model, ``baseline`` (the tiny one), as the packaged default."""
    folder = tmp_path / "packaged"
    shutil.copytree(tiny_baseline, folder / "baseline")
    (folder / "DEFAULT").write_text("baseline\n")
    monkeypatch.setattr(store, "PACKAGED_DIR", folder)
    return folder


def set_provenance(folder, version: str, data: str) -> None:
    config = json.loads((folder / "config.json").read_text())
    config.setdefault("versions", {})["stance"] = version
    config["training_data"] = {"data_sha256": data, "label_counts": {"neutral": 3, "pro-scanning": 2}}
    (folder / "config.json").write_text(json.dumps(config))


def test_an_empty_store_falls_back_to_the_packaged_default(empty_store, packaged):
    ref = store.resolve()
    assert (ref.name, ref.origin, ref.path) == ("baseline", "packaged", packaged / "baseline")
    assert ref.sha256 == store.folder_sha256(packaged / "baseline")


def test_a_store_entry_comes_before_the_packaged_copy_and_a_folder_before_both(empty_store, packaged, tmp_path):
    shutil.copytree(packaged / "baseline", empty_store / "baseline")
    assert store.resolve("baseline").origin == "store"
    assert store.resolve(str(packaged / "baseline")).origin == "folder"
    (empty_store / "DEFAULT").write_text("mine\n")
    shutil.copytree(packaged / "baseline", empty_store / "mine")
    assert store.default_name() == "mine" and store.resolve().path == (empty_store / "mine").resolve()


def test_a_stale_store_entry_that_shadows_the_packaged_model_warns(empty_store, packaged):
    shutil.copytree(packaged / "baseline", empty_store / "baseline")
    set_provenance(packaged / "baseline", "0.2.0", "new-data")
    set_provenance(empty_store / "baseline", "0.1.0", "old-data")
    with pytest.warns(store.StaleModelWarning, match="shadows the packaged 'baseline'"):
        store.resolve("baseline")
    set_provenance(empty_store / "baseline", "0.2.0", "new-data")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        store.resolve("baseline")


def test_a_missing_model_names_the_command_that_builds_it(empty_store, packaged):
    with pytest.raises(ModelNotFoundError, match=r"make all.*stance train transformer"):
        store.resolve("transformer")
    with pytest.raises(ModelNotFoundError, match="no saved model at"):
        store.resolve(str(empty_store / "nowhere" / "model"))


def test_a_retrained_model_is_reloaded(empty_store, packaged):
    shutil.copytree(packaged / "baseline", empty_store / "baseline")
    first, ref = store.load("baseline")
    assert store.load("baseline")[0] is first
    set_provenance(empty_store / "baseline", "0.1.0", "other")
    again, new_ref = store.load("baseline")
    assert again is not first and new_ref.sha256 != ref.sha256


def test_package_default_copies_the_store_default_and_refuses_large_models(empty_store, packaged, monkeypatch):
    shutil.copytree(packaged / "baseline", empty_store / "small")
    (empty_store / "DEFAULT").write_text("small\n")
    target = store.package_default()
    assert target == packaged / "small" and (packaged / "DEFAULT").read_text().strip() == "small"
    assert not (packaged / "baseline").exists()  # one packaged model: the default
    monkeypatch.setattr(store, "PACKAGED_MAX_BYTES", 1000)
    with pytest.raises(ValueError, match="over the"):
        store.package_default()


def test_list_models_shows_store_and_packaged_entries(empty_store, packaged):
    shutil.copytree(packaged / "baseline", empty_store / "trained")
    set_provenance(empty_store / "trained", "0.1.0", "abc")
    entries = store.list_models()
    assert [(e["name"], e["origin"], e["default"]) for e in entries] == [("trained", "store", False),
                                                                         ("baseline", "packaged", True)]
    assert entries[0]["data_sha256"] == "abc" and entries[0]["training_rows"] == 5
    assert entries[0]["family"] == "tfidf" and len(entries[0]["sha256"]) == 64


def test_the_store_and_cache_follow_the_environment(tmp_path, monkeypatch):
    from stance import paths

    monkeypatch.setenv("STANCE_HOME", str(tmp_path / "s"))
    monkeypatch.setenv("STANCE_CACHE_DIR", str(tmp_path / "c"))
    assert paths.models_dir() == tmp_path / "s" and paths.encoders_dir() == tmp_path / "s" / "encoders"
    assert paths.cache_dir() == tmp_path / "c"
    monkeypatch.delenv("STANCE_HOME")
    monkeypatch.delenv("STANCE_CACHE_DIR")
    assert paths.models_dir().name == "stance" and paths.cache_dir().name == "stance"
    assert paths.project_root() not in paths.models_dir().parents


def test_the_hash_names_the_weights_not_the_training_time_or_the_card(tmp_path, tiny_baseline):
    folder = tmp_path / "m"
    shutil.copytree(tiny_baseline, folder)
    before = store.folder_sha256(folder)
    config = json.loads((folder / "config.json").read_text())
    config["train_seconds"] = 123.4
    (folder / "config.json").write_text(json.dumps(config, indent=4))
    (folder / "README.md").write_text("# a card\n")
    assert store.folder_sha256(folder) == before
    config["params"]["C"] = 0.5
    (folder / "config.json").write_text(json.dumps(config))
    assert store.folder_sha256(folder) != before
    weights = next(p for p in folder.rglob("*.npz"))
    weights.write_bytes(weights.read_bytes() + b"\0")
    assert store.folder_sha256(folder) != store.folder_sha256(tiny_baseline)
