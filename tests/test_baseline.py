import json
import subprocess
import sys
import zipfile
from collections import Counter

import numpy as np
import pytest

from stance.data.loaders import challenge_rows, seed_rows, supplement_rows
from stance.labels import LABELS
from stance.models import ModelNotFoundError, load_model
from stance.models.base import expand_proba
from stance.models.tfidf import TfidfModel
from stance.models.tfidf_compiled import ARRAYS_FILE, VOCAB_FILE, char_wb_ngrams, softmax

# inputs that stress the analyzers: accents, case folding that changes length or is
# context-dependent, non-Latin scripts, digits, punctuation only, every kind of whitespace,
# nothing left after tokenising, and very long text
ODD_TEXTS = [
    "",
    " ",
    "\t\n\r\x0b\x0c",
    "!!! ... ??? --- ;;",
    "a",
    "I",
    "é",
    "Ünïcödé àccênts: café, naïve, façade, résumé.",
    "e\u0301 combining acute vs é precomposed",
    "ΟΔΟΣ ΣΊΣΥΦΟΣ σίσυφος — final sigma",
    "İstanbul KELVIN \u212a Straße STRASSE ﬁne",
    "日本語のテキスト、暗号化とスキャン。",
    "Шифрование защищает всех пользователей.",
    "emoji 🔒🔑 encryption 👶 scanning",
    "123 4567 2024-11-24 3.14 £5m 1,000,000 E2EE e2ee 5G",
    "tabs\tand\nnewlines\r\n  many   spaces\u00a0nbsp\u2003em\u3000ideographic",
    "zero\u200bwidth\u200djoiner soft\u00adhyphen",
    "under_score snake_case __dunder__ a_b",
    "end-to-end client-side \"quoted\" (parenthesised) [bracketed] {braced}",
    "x" * 5000,
    " ".join(["Scanning every private message would break end-to-end encryption."] * 300),
    "Tab\tseparated\tvalues\nand a second line\n\n\nafter blank lines",
    "'' ' \" \" ` ´",
]
ODD_TEXTS.append("\n".join(ODD_TEXTS))


def sklearn_proba(model: TfidfModel, texts: list[str]) -> np.ndarray:
    """What the old predict_proba computed from the scikit-learn pipeline itself."""
    pipeline = model.pipeline_
    present = [int(c) for c in pipeline.named_steps["classifier"].classes_]
    if model.classifier == "logreg":
        return expand_proba(pipeline.predict_proba(texts), present)
    scores = pipeline.decision_function(texts)
    if scores.ndim == 1:
        scores = np.stack([-scores, scores], axis=1)
    return expand_proba(softmax(scores), present)


@pytest.fixture(scope="module")
def training() -> tuple[list[str], list[str]]:
    rows = seed_rows() + supplement_rows()
    return [r["text"] for r in rows], [r["label"] for r in rows]


@pytest.fixture(scope="module", params=["logreg", "svm"])
def fitted(request, training) -> TfidfModel:
    texts, labels = training
    return TfidfModel(C=10.0, classifier=request.param, seed=3).fit(texts, labels)


@pytest.mark.parametrize("source", ["seeds", "supplement", "challenge", "odd"])
def test_compiled_path_matches_the_sklearn_pipeline(fitted, source):
    texts = {
        "seeds": lambda: [r["text"] for r in seed_rows()],
        "supplement": lambda: [r["text"] for r in supplement_rows()],
        "challenge": lambda: [r["text"] for r in challenge_rows()],
        "odd": lambda: ODD_TEXTS,
    }[source]()
    ours, theirs = fitted.predict_proba(texts), sklearn_proba(fitted, texts)
    assert ours.shape == theirs.shape == (len(texts), 3)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-9)
    assert fitted.predict(texts) == [LABELS[i] for i in theirs.argmax(axis=1)]
    # one at a time (the per-word cache is warm now) gives the same rows as the batch
    np.testing.assert_allclose(np.vstack([fitted.predict_proba([t]) for t in texts[:40]]), theirs[:40],
                               rtol=0, atol=1e-9)


def test_compiled_counts_and_features_equal_the_vectorizers(fitted):
    from scipy import sparse
    from sklearn.feature_extraction.text import CountVectorizer

    texts = ODD_TEXTS + [r["text"] for r in seed_rows()]
    union = fitted.pipeline_.named_steps["features"]
    counts = fitted.compiled_.counts(texts)
    for ours, (name, vectorizer) in zip(counts, union.transformer_list):
        # the fitted analyzer over the fitted vocabulary, without idf and normalisation: exact counts
        counter = CountVectorizer(analyzer=vectorizer.build_analyzer(), vocabulary=vectorizer.vocabulary_)
        theirs = counter.transform(texts)
        assert ours.shape == theirs.shape and abs(ours - theirs).max() == 0, name
    x_word, x_char = fitted.compiled_.features(texts)
    assert abs(sparse.hstack([x_word, x_char]) - union.transform(texts)).max() < 1e-12


def test_char_ngrams_are_the_same_as_sklearn_char_wb():
    from sklearn.feature_extraction.text import TfidfVectorizer

    char = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5)).build_analyzer()
    for text in ODD_TEXTS:
        assert Counter(g for w in text.lower().split() for g in char_wb_ngrams(w, 2, 5)) == Counter(char(text))
    short = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3)).build_analyzer()
    assert Counter(char_wb_ngrams("ab", 1, 3)) == Counter(short("ab"))


@pytest.mark.parametrize("classifier", ["logreg", "svm"])
def test_two_class_training_matches_sklearn(classifier):
    texts = ["safe haven for abusers", "scanning finds abusers", "the vote is on Tuesday", "the debate is on Monday"]
    model = TfidfModel(classifier=classifier).fit(texts, ["pro-scanning", "pro-scanning", "neutral", "neutral"])
    probe = texts + ["encryption protects everyone", "", "abusers on Tuesday"]
    proba = model.predict_proba(probe)
    np.testing.assert_allclose(proba, sklearn_proba(model, probe), rtol=0, atol=1e-9)
    assert (proba[:, 1] == 0.0).all()


def test_saved_baseline_loads_without_pickle_and_predicts_identically(tmp_path, fitted):
    texts = [r["text"] for r in challenge_rows()] + ODD_TEXTS
    folder = fitted.save(tmp_path / fitted.classifier, training_data={"note": "test"})
    assert sorted(p.name for p in folder.iterdir()) == sorted(["config.json", ARRAYS_FILE, VOCAB_FILE])
    with zipfile.ZipFile(folder / ARRAYS_FILE) as npz:
        for name in npz.namelist():  # every member is a plain .npy array, none an object (pickled) array
            with npz.open(name) as member:
                assert np.lib.format.read_magic(member) == (1, 0)
                _, _, dtype = np.lib.format.read_array_header_1_0(member)
                assert not dtype.hasobject
    with np.load(folder / ARRAYS_FILE, allow_pickle=False) as arrays:
        assert {"coef", "intercept", "classes", "word_idf", "char_idf"} <= set(arrays.files)
    vocab = json.loads((folder / VOCAB_FILE).read_text(encoding="utf-8"))
    assert len(vocab["word"]) + len(vocab["char"]) == fitted.compiled_.coef.shape[1]
    again = load_model(folder)
    assert isinstance(again, TfidfModel) and again.classifier == fitted.classifier
    assert not hasattr(again, "pipeline_")
    assert np.array_equal(again.predict_proba(texts), fitted.predict_proba(texts))
    assert again.top_features(k=10) == fitted.top_features(k=10)
    assert again.metadata["seed"] == 3


def test_loading_and_predicting_import_no_sklearn_skops_or_torch(tmp_path, fitted):
    folder = fitted.save(tmp_path / "saved")
    expected = fitted.predict_proba(ODD_TEXTS[:8]).tolist()
    code = (
        "import json, sys\n"
        "import stance\n"
        f"model = stance.load({str(folder)!r})\n"
        f"proba = model.predict_proba({ODD_TEXTS[:8]!r}).tolist()\n"
        f"label = stance.predict('Encryption protects everyone.', model={str(folder)!r}).label\n"
        "print(json.dumps({'proba': proba, 'label': label, "
        "'loaded': [m for m in ('sklearn', 'skops', 'torch') if m in sys.modules]}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["loaded"] == []
    assert result["label"] in LABELS
    np.testing.assert_array_equal(np.array(result["proba"]), np.array(expected))


def test_a_baseline_in_the_old_skops_format_is_refused_with_the_fix(tmp_path, fitted):
    folder = fitted.save(tmp_path / "old")
    (folder / ARRAYS_FILE).unlink()
    (folder / "pipeline.skops").write_bytes(b"PK\x03\x04")
    with pytest.raises(ValueError, match="make all"):
        load_model(folder)


def test_top_features_match_the_sklearn_coefficients(fitted):
    names = fitted.pipeline_.named_steps["features"].get_feature_names_out()
    coef = fitted.pipeline_.named_steps["classifier"].coef_
    top = fitted.top_features(k=8)
    for row, label in enumerate(LABELS):
        assert [name for name, _ in top[label]] == [str(names[j]) for j in np.argsort(-coef[row])[:8]]


def test_a_training_set_without_a_class_still_gives_three_columns():
    model = TfidfModel().fit(["safe haven for abusers", "the vote is on Tuesday"], ["pro-scanning", "neutral"])
    proba = model.predict_proba(["encryption protects everyone"])
    assert proba.shape == (1, 3)
    assert proba[0, 1] == 0.0 and proba.sum() == pytest.approx(1.0)
    assert model.predict_proba([]).shape == (0, 3)


def test_bad_input_is_refused():
    with pytest.raises(TypeError, match="position 1"):
        TfidfModel().fit(["a", None], ["neutral", "neutral"])
    with pytest.raises(ValueError, match="position 0"):
        TfidfModel().fit(["a"], ["pro-cats"])
    with pytest.raises(ValueError):
        TfidfModel(classifier="forest")
    with pytest.raises(TypeError, match="position 0"):
        TfidfModel().fit(["ab cd", "ef gh"], ["neutral", "pro-scanning"]).predict_proba([3])


def test_missing_model_names_the_command(tmp_path):
    with pytest.raises(ModelNotFoundError, match="make all"):
        load_model(tmp_path / "nothing-here")


def test_top_ngrams_show_what_the_baseline_learned():
    from stance.evaluation.cards import top_features_markdown

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


@pytest.mark.parametrize("setting", [{"features__word__ngram_range": (1, 3)},
                                     {"features__word__token_pattern": r"\S+"},
                                     {"features__char__strip_accents": "unicode"},
                                     {"features__word__stop_words": ["the"]}])
def test_settings_the_compiled_path_does_not_reproduce_are_refused(setting):
    from stance.models.tfidf_compiled import CompiledTfidf

    pipeline = TfidfModel()._pipeline().set_params(**setting)
    pipeline.fit(["scanning finds the abusers", "encryption keeps the privacy", "the vote is on Tuesday"], [0, 1, 2])
    with pytest.raises(NotImplementedError):
        CompiledTfidf.from_pipeline(pipeline, "logreg")
