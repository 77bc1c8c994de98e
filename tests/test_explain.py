"""Sentence explanations: the contract (spans, k, order, errors, determinism), the TF-IDF
decomposition's arithmetic, occlusion's numbers, and ERASER comprehensiveness on held-out data."""

from __future__ import annotations

import re

import numpy as np
import pytest

from stance.data.loaders import contrast_test_rows, seed_rows
from stance.evaluation.faithfulness import comprehensiveness, mean_ci
from stance.labels import LABEL_TO_ID, LABELS
from stance.models import explain as explain_module
from stance.models import load_model
from stance.models.base import StanceModel
from stance.models.explain import Attribution, delete_spans, word_spans
from stance.models.reference import KeywordRuleModel
from stance.models.tfidf import TfidfModel

SENTENCES = [
    "End-to-end encryption protects journalists, dissidents and ordinary users from hackers.",
    "Platforms must scan for known abuse images so that children are not left without protection.",
    "The committee will publish its report on the proposal next week.",
    "Privacy \u2014 and security \u2014 are what (e2e) encryption is for, isn't it?",
]


@pytest.fixture(scope="module")
def baseline(tiny_baseline):
    return load_model(tiny_baseline)


@pytest.fixture(scope="module")
def shipped():
    import stance

    return stance.load()


@pytest.fixture(scope="module")
def shipped_baseline():
    import stance

    return stance.load("baseline")  # the shipped TF-IDF model, which reads contexts


@pytest.fixture(scope="module")
def contrast():
    rows = contrast_test_rows()
    return [r["text"] for r in rows], [r["context"] for r in rows]


# ---------------------------------------------------------------- words and deletion


def test_word_spans_join_inner_hyphens_and_apostrophes_but_not_punctuation():
    text = "Apple\u2019s end-to-end plan, isn't it?"
    assert [text[s:e] for s, e in word_spans(text)] == ["Apple\u2019s", "end-to-end", "plan", "isn't", "it"]
    assert word_spans("  \u2014 ... ") == []


def test_delete_spans_removes_the_word_and_one_whitespace_run():
    text = "Scan  every\tmessage now"
    words = word_spans(text)
    assert delete_spans(text, [words[1]]) == "Scan  message now"
    assert delete_spans(text, [words[3]]) == "Scan  every\tmessage"  # last word takes the space before
    assert delete_spans(text, [words[0], words[0], (0, 2)]) == "every\tmessage now"  # merged overlaps
    assert delete_spans(text, words) == ""
    with pytest.raises(ValueError, match="outside"):
        delete_spans(text, [(3, 99)])


# ---------------------------------------------------------------- the contract, on every family


def _check_explanations(model, texts, k):
    spans = model.attributions(texts, k=k)
    pairs = model.explain(texts, k=k)
    assert len(spans) == len(pairs) == len(texts)
    for text, row, plain in zip(texts, spans, pairs):
        assert plain == [(a.span, a.weight) for a in row]
        assert len(row) <= k
        weights = [a.weight for a in row]
        assert weights == sorted(weights, reverse=True)
        assert all(w > 0 for w in weights)
        for a in row:
            assert text[a.start : a.end] == a.span  # as it appears in the text
            # whole words or phrases of whole words, never a piece of punctuation or a word
            assert re.fullmatch(r"\w.*\w|\w", a.span)
            assert any(s == a.start for s, _ in word_spans(text)) and any(e == a.end for _, e in word_spans(text))
    return spans


@pytest.mark.parametrize("k", [1, 2, 5])
def test_tfidf_explanations_meet_the_contract(baseline, k):
    rows = _check_explanations(baseline, SENTENCES, k)
    assert all(len(row) >= 1 for row in rows)
    assert max(len(row) for row in rows) == k


@pytest.mark.parametrize("k", [1, 3])
def test_occlusion_explanations_meet_the_contract(baseline, k):
    class Occluded:  # the base-class default (occlusion) applied to a real TF-IDF model
        def attributions(self, texts, contexts=None, k=5):
            return StanceModel.attributions(baseline, texts, contexts, k)

        explain = StanceModel.explain

    occluded = Occluded()
    rows = _check_explanations(occluded, SENTENCES, k)
    assert any(rows)


def test_bad_input_is_refused(baseline):
    keyword = KeywordRuleModel()
    for model in (baseline, keyword):
        for bad in (["fine", ""], ["   \n"]):
            with pytest.raises(ValueError, match="position"):
                model.explain(bad)
        with pytest.raises(ValueError, match="k must be"):
            model.explain(["privacy"], k=0)
        with pytest.raises(TypeError, match="k must be an int"):
            model.explain(["privacy"], k="3")
        with pytest.raises(TypeError, match="single str"):
            model.explain("privacy matters")
        with pytest.raises(TypeError, match="position 1"):
            model.explain(["privacy", None])
        with pytest.raises(ValueError, match="contexts"):
            model.explain(["privacy", "safety"], contexts=["one"])
        assert model.explain([]) == []


def test_explanations_are_deterministic(baseline, tiny_baseline):
    first = baseline.explain(SENTENCES, k=4)
    assert baseline.explain(SENTENCES, k=4) == first
    assert load_model(tiny_baseline).explain(list(reversed(SENTENCES)), k=4) == list(reversed(first))
    keyword = KeywordRuleModel()
    assert keyword.explain(SENTENCES) == keyword.explain(SENTENCES)


# ---------------------------------------------------------------- TF-IDF: exact contributions


def _log_odds_margin(proba_row, present):
    """The predicted label's logit minus the others' mean, read back from the probabilities
    (softmax and sigmoid cancel their normaliser in log-ratios): independent of the decomposition."""
    label = int(np.argmax(proba_row))
    others = [c for c in present if c != label]
    return np.log(proba_row[label]) - np.mean(np.log(proba_row[others]))


@pytest.mark.parametrize("with_context", [False, True])
def test_tfidf_contributions_sum_to_the_logit_margin(shipped_baseline, with_context):
    shipped = shipped_baseline
    texts = SENTENCES + ["\u2014 \u2014", "Scanning. Scanning! scanning?"]
    contexts = ["Ministers defend the online safety bill"] * len(texts) if with_context else None
    proba = shipped.predict_proba(texts, contexts)
    present = [int(c) for c in shipped.compiled_.classes]
    for row, text, parts in zip(proba, texts, shipped.contributions(texts, contexts)):
        assert parts.label == LABELS[int(np.argmax(row))]
        total = parts.intercept + parts.context + parts.unattributed + sum(w for _, _, w in parts.spans)
        assert total == pytest.approx(parts.margin, abs=1e-9)
        assert parts.margin == pytest.approx(_log_odds_margin(row, present), abs=1e-9)
        assert (parts.context != 0.0) == with_context
        assert all(type(v) is float for v in (parts.margin, parts.intercept, parts.context, parts.unattributed))
        for start, end, _ in parts.spans:
            assert re.fullmatch(r"\w.*\w|\w", text[start:end])
    # a chunk with no word ("\u2014") cannot be given to any word of the sentence
    dash_only = shipped.contributions(["\u2014 \u2014"])[0]
    assert dash_only.spans == []
    assert (dash_only.unattributed != 0.0) == bool(shipped.compiled_.occurrences("\u2014 \u2014"))


def test_tfidf_contributions_include_phrases_and_a_binary_model_sums_too(tiny_baseline):
    rows = [r for r in seed_rows() if r["label"] != "neutral"]
    binary = TfidfModel(C=10.0).fit([r["text"] for r in rows], [r["label"] for r in rows])
    assert binary.compiled_.coef.shape[0] == 1
    present = [int(c) for c in binary.compiled_.classes]
    proba = binary.predict_proba(SENTENCES)
    spans_seen = []
    for row, text, parts in zip(proba, SENTENCES, binary.contributions(SENTENCES)):
        total = parts.intercept + parts.unattributed + sum(w for _, _, w in parts.spans)
        assert total == pytest.approx(parts.margin, abs=1e-9)
        assert parts.margin == pytest.approx(_log_odds_margin(row, present), abs=1e-9)
        spans_seen += [text[s:e] for s, e, _ in parts.spans]
    assert any(" " in span for span in spans_seen)  # word bigrams are reported as phrases


def test_tfidf_occurrences_match_the_counts(shipped_baseline):
    compiled = shipped_baseline.compiled_
    for text in SENTENCES + ["\u0130stanbul court ORDERS scanning"]:  # a lower case longer than its letter
        x_word, x_char = compiled.counts([text])
        counts = {int(j): v for j, v in zip(x_word.indices, x_word.data)}
        counts.update({len(compiled.word_terms) + int(j): v for j, v in zip(x_char.indices, x_char.data)})
        found = compiled.occurrences(text)
        assert {j: float(len(v)) for j, v in found.items()} == counts
        for places in found.values():
            assert all(0 <= s < e <= len(text) for s, e in places)


# ---------------------------------------------------------------- occlusion


def test_occlusion_weight_is_the_drop_in_the_predicted_probability():
    model = KeywordRuleModel()
    # "privacy" is the only cue: without it the rule says neutral, 0.8 -> 0.1 for pro-encryption
    assert model.explain(["Privacy matters to everyone here"]) == [[("Privacy", pytest.approx(0.7))]]
    # two cues: deleting either leaves the label, so no word pushed it on its own
    assert model.explain(["privacy and security matter"]) == [[]]


def test_occlusion_is_bounded_and_batched(monkeypatch):
    model = KeywordRuleModel()
    filler = " ".join(["word"] * 70)
    early = "privacy " + filler
    late = filler + " privacy"
    assert model.explain([early, late]) == [[("privacy", pytest.approx(0.7))], []]  # past MAX_WORDS: unexplained
    calls = []
    original = model.predict_proba

    def counting(texts, contexts=None):
        calls.append(len(texts))
        return original(texts, contexts)

    monkeypatch.setattr(model, "predict_proba", counting)
    monkeypatch.setattr(explain_module, "BATCH_VARIANTS", 10)
    assert model.explain([early, late]) == [[("privacy", pytest.approx(0.7))], []]
    assert calls[0] == 2 and max(calls[1:]) <= 10 and sum(calls[1:]) == 2 * explain_module.MAX_WORDS


def test_ensemble_explains_its_vote_without_branching(baseline):
    from stance.models.ensemble import EnsembleModel

    ensemble = EnsembleModel(members=[{"family": "tfidf"}, {"family": "keyword-rule"}], weights=[1.0, 3.0])
    ensemble.models_ = [baseline, KeywordRuleModel()]
    text = "Privacy matters to everyone here"
    got = ensemble.attributions([text], k=10)[0]
    base = ensemble.predict_proba([text])[0]
    label = int(np.argmax(base))
    for a in got:
        without = ensemble.predict_proba([delete_spans(text, [(a.start, a.end)])])[0]
        assert a.weight == pytest.approx(base[label] - without[label], abs=1e-12)
    assert got[0].span == "Privacy" and label == LABEL_TO_ID["pro-encryption"]


def test_embedding_models_never_cache_the_deleted_word_variants(monkeypatch):
    from stance.models import encoder
    from stance.models.embedding import EmbeddingLogRegModel, LogisticHead

    seen: list[tuple[int, bool]] = []

    def fake_encode(texts, batch_size=64, cache=True, name="minilm", threads=None, backend="torch-fp32"):
        seen.append((len(texts), cache))
        return np.array([[len(t), t.lower().count("privacy")] for t in texts], dtype=np.float32)

    monkeypatch.setattr(encoder, "encode", fake_encode)
    model = EmbeddingLogRegModel()
    model.head_ = LogisticHead(np.arange(3), np.array([[0.0, -2.0], [0.0, 3.0], [0.0, 0.0]]), np.zeros(3))
    text = "Privacy matters to everyone"
    assert model.predict([text]) == ["pro-encryption"]
    got = model.explain([text])
    assert got[0][0][0] == "Privacy" and len(got[0]) == 1
    assert seen[-2] == (1, True) and seen[-1] == (4, False)  # intact text cached, the 4 variants not


# ---------------------------------------------------------------- faithfulness (ERASER comprehensiveness)


def test_comprehensiveness_is_deterministic_and_checks_its_input(baseline):
    texts = SENTENCES
    first = comprehensiveness(baseline, texts, k=2, seed=3)
    again = comprehensiveness(baseline, texts, k=2, seed=3)
    assert np.array_equal(first.top, again.top) and np.array_equal(first.random, again.random)
    assert first.skipped == len(texts) - len(first.index)
    with pytest.raises(ValueError, match="explanations"):
        comprehensiveness(baseline, texts, explained=[[]])
    with pytest.raises(ValueError, match="no values"):
        mean_ci(np.zeros(0))
    mean, low, high = mean_ci(np.array([0.1, 0.2, 0.3, 0.4]))
    assert mean == pytest.approx(0.25) and low <= mean <= high


def test_shipped_default_explanations_are_faithful_on_the_contrast_test_set(shipped, contrast):
    """Deleting the explained words must hurt the predicted label far more than deleting random ones.

    Measured (benchmarks/results/explain_faithfulness.md): k=5 drop 0.555 vs 0.089 random, paired
    difference 0.466 [0.435, 0.497]; k=1 0.166 vs 0.019. Asserted well below, so that a retrained
    default that still explains faithfully passes, while explanations unrelated to the model fail.
    """
    texts, contexts = contrast
    five = comprehensiveness(shipped, texts, contexts, k=5, seed=0)
    assert len(five.top) >= 0.9 * len(texts)
    difference, low, _ = mean_ci(five.top - five.random)
    assert five.top.mean() > 0.35 and difference > 0.25 and low > 0.2
    one = comprehensiveness(shipped, texts, contexts, k=1, seed=0)
    assert one.top.mean() > 3 * one.random.mean()
    # and the check can fail: "explanations" drawn at random are no better than random words
    rng = np.random.default_rng(1)
    shuffled = [[Attribution(t[s:e], 1.0, s, e) for s, e in rng.permutation(word_spans(t))[:5]] for t in texts]
    control = comprehensiveness(shipped, texts, contexts, k=5, seed=0, explained=shuffled)
    assert abs(control.top.mean() - control.random.mean()) < 0.1


@pytest.mark.slow
def test_shipped_transformer_explanations_are_faithful(contrast):
    """Occlusion through the shipped ensemble (TF-IDF + mpnet head) on 40 contrast sentences (~1 min)."""
    import stance

    model = stance.load("transformer")
    texts, contexts = (part[:40] for part in contrast)
    result = comprehensiveness(model, texts, contexts, k=5, seed=0)
    difference, low, _ = mean_ci(result.top - result.random)
    assert difference > 0.15 and low > 0.05


@pytest.mark.slow
def test_small_embedding_model_explanations_are_faithful(contrast):
    """Occlusion on a MiniLM + logistic head fitted on the seeds and supplement (~1-2 min on a busy machine)."""
    from stance.data.loaders import extra_training_rows
    from stance.models.embedding import EmbeddingLogRegModel

    rows = seed_rows() + extra_training_rows("supplement")
    model = EmbeddingLogRegModel(C=1.0).fit([r["text"] for r in rows], [r["label"] for r in rows])
    texts, contexts = (part[:40] for part in contrast)
    result = comprehensiveness(model, texts, contexts, k=5, seed=0)
    difference, low, _ = mean_ci(result.top - result.random)
    assert difference > 0.15 and low > 0.05
