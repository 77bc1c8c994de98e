import numpy as np
import pytest

from stance.data import seed_rows
from stance.models import ModelNotFoundError, load_model
from stance.models.tfidf import TfidfModel


def test_saved_baseline_loads_without_pickle_and_predicts_identically(tmp_path):
    rows = seed_rows()
    texts, labels = [r["text"] for r in rows], [r["label"] for r in rows]
    for classifier in ("logreg", "svm"):
        model = TfidfModel(C=10.0, classifier=classifier, seed=3).fit(texts, labels)
        folder = model.save(tmp_path / classifier, training_data={"note": "test"})
        payload = (folder / "pipeline.skops").read_bytes()
        assert not payload.startswith(b"\x80"), "must not be a pickle stream"
        again = load_model(folder)
        assert isinstance(again, TfidfModel) and again.classifier == classifier
        assert np.array_equal(again.predict_proba(texts), model.predict_proba(texts))
        assert again.metadata["seed"] == 3


def test_a_training_set_without_a_class_still_gives_three_columns():
    model = TfidfModel().fit(["safe haven for abusers", "the vote is on Tuesday"], ["pro-scanning", "neutral"])
    proba = model.predict_proba(["encryption protects everyone"])
    assert proba.shape == (1, 3)
    assert proba[0, 1] == 0.0 and proba.sum() == pytest.approx(1.0)


def test_bad_input_is_refused():
    with pytest.raises(TypeError, match="position 1"):
        TfidfModel().fit(["a", None], ["neutral", "neutral"])
    with pytest.raises(ValueError, match="position 0"):
        TfidfModel().fit(["a"], ["pro-cats"])
    with pytest.raises(ValueError):
        TfidfModel(classifier="forest")


def test_missing_model_names_the_command(tmp_path):
    with pytest.raises(ModelNotFoundError, match="make all"):
        load_model(tmp_path / "nothing-here")


def test_top_ngrams_show_what_the_baseline_learned():
    from stance.experiment import top_features_markdown

    model = TfidfModel(C=10.0, seed=0).fit(
        ["scanning finds abusers", "scanning catches abusers", "encryption protects privacy",
         "encryption keeps privacy", "the vote is on Tuesday", "the debate is on Monday"],
        ["pro-scanning", "pro-scanning", "pro-encryption", "pro-encryption", "neutral", "neutral"])
    top = model.top_features(k=5)
    assert set(top) == {"pro-scanning", "pro-encryption", "neutral"}
    assert any("abusers" in name for name, _ in top["pro-scanning"])
    assert any("privacy" in name for name, _ in top["pro-encryption"])
    assert all(weight > 0 for name, weight in top["pro-encryption"][:3])
    table = top_features_markdown("baseline", top)
    assert table.count("\n| ") == 1 + 5  # header + one row per rank
