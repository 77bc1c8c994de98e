"""The behavioural (CheckList) suite: its templates, its expansion and its scoring."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np
import pytest

from stance.evaluation.behavioural import (
    DIR_MIN_DROP,
    Case,
    TemplateError,
    build_cases,
    case_passes,
    default_templates_path,
    expand_templates,
    format_results,
    run_suite,
)
from stance.labels import LABEL_TO_ID, LABELS, STANCE_LABELS
from stance.paths import seeds_dir

REQUIRED_TYPES = {
    "inv_speaker_swap": "INV",
    "inv_org_country_swap": "INV",
    "inv_attribution_verb": "INV",
    "inv_neutral_prefix": "INV",
    "dir_reported_opposite": "DIR",
    "mft_furniture": "MFT",
    "mft_pro_encryption": "MFT",
    "mft_pro_scanning": "MFT",
    "mft_neutral_on_topic": "MFT",
}


# ------------------------------------------------------------------------------------ fakes


def one_hot(label: str, n: int) -> np.ndarray:
    proba = np.zeros((n, len(LABELS)))
    proba[:, LABEL_TO_ID[label]] = 1.0
    return proba


class ConstantModel:
    """Always the same label, with probability 1."""

    def __init__(self, label: str) -> None:
        self.label = label

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return one_hot(self.label, len(texts))


class RuleModel:
    """Probability rows chosen by a function of the text."""

    def __init__(self, rule: Callable[[str], Sequence[float]]) -> None:
        self.rule = rule
        self.calls: list[list[str]] = []

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return np.array([self.rule(text) for text in texts], dtype=float)


def denial_keyword_rule(text: str) -> list[float]:
    """``pro-scanning`` (0.7) unless the text says 'denied' or 'rejected', then ``neutral`` (0.7)."""
    if re.search(r"\b(denied|rejected)\b", text):
        return [0.1, 0.2, 0.7]
    return [0.7, 0.1, 0.2]


@pytest.fixture(scope="module")
def cases() -> list[Case]:
    return build_cases()


def of_type(cases: list[Case], test_type: str) -> list[Case]:
    return [case for case in cases if case.test_type == test_type]


# ------------------------------------------------------------------------- the templates


def test_suite_has_enough_cases_and_types(cases: list[Case]) -> None:
    counts = Counter(case.test_type for case in cases)
    assert len(cases) >= 300
    assert len(counts) >= 8
    assert set(REQUIRED_TYPES) <= set(counts)
    for test_type, kind in REQUIRED_TYPES.items():
        assert {case.kind for case in of_type(cases, test_type)} == {kind}
        assert counts[test_type] >= 30, test_type


def test_every_case_is_well_formed(cases: list[Case]) -> None:
    assert len({case.case_id for case in cases}) == len(cases)
    for case in cases:
        assert case.kind in {"MFT", "INV", "DIR"}
        assert case.rule
        assert all(text and "{" not in text and "}" not in text for text in case.texts)
        assert all(text == " ".join(text.split()) and not text[0].islower() for text in case.texts)
        if case.kind == "MFT":
            assert len(case.texts) == 1
            assert case.expected in LABELS
        else:
            assert len(case.texts) >= 2
            assert len(set(case.texts)) == len(case.texts)
        if case.kind == "DIR":
            assert case.expected in STANCE_LABELS
        if case.kind == "INV":
            assert case.expected in LABELS


def test_building_is_deterministic(cases: list[Case]) -> None:
    again = build_cases()
    assert again == cases
    spec = json.loads(default_templates_path().read_text(encoding="utf-8"))
    assert expand_templates(spec) == cases


def test_claim_based_tests_cover_both_sides_evenly(cases: list[Case]) -> None:
    for test_type in ("inv_speaker_swap", "inv_attribution_verb", "inv_neutral_prefix", "dir_reported_opposite"):
        sides = Counter(case.expected for case in of_type(cases, test_type))
        assert set(sides) == set(STANCE_LABELS)
        assert sides["pro-scanning"] == sides["pro-encryption"]
    # the organisation/country swap has all three intended labels
    assert {case.expected for case in of_type(cases, "inv_org_country_swap")} == set(LABELS)


def test_speaker_frames_are_not_tied_to_a_side(cases: list[Case]) -> None:
    for side in STANCE_LABELS:
        originals = [case.original for case in of_type(cases, "inv_speaker_swap") if case.expected == side]
        assert any(text.startswith("According to") for text in originals)
        assert any(not text.startswith("According to") for text in originals)
        speakers = {text.split(" said ")[0] for text in originals if " said " in text}
        assert len(speakers) >= 8


def test_swaps_change_only_the_swapped_part(cases: list[Case]) -> None:
    verbs = (
        "said",
        "warned",
        "argued",
        "claimed",
        "told reporters",
        "insisted",
        "stressed",
        "wrote",
        "maintained",
        "told MPs",
    )
    for case in of_type(cases, "inv_attribution_verb"):
        stripped = {re.sub("|".join(rf"\b{verb} that\b" for verb in verbs), "VERB that", t) for t in case.texts}
        assert len(stripped) == 1, case.case_id
    for case in of_type(cases, "inv_speaker_swap"):
        tails = {text.split(" said ", 1)[-1].split(", ", 1)[-1] for text in case.texts}
        assert len(tails) == 1, case.case_id
    for case in of_type(cases, "dir_reported_opposite"):
        assert " denied that " in case.texts[1] and " rejected " in case.texts[2]


def test_templates_avoid_the_seed_sentences(cases: list[Case]) -> None:
    seeds = " ".join(" ".join(path.read_text(encoding="utf-8").split()) for path in sorted(seeds_dir().glob("*.txt")))
    seeds = seeds.lower().replace("\u2019", "'").replace("\u2018", "'")
    assert seeds
    for text in {text for case in cases for text in case.texts}:
        if len(text) >= 30:
            assert text.lower().rstrip(".") not in seeds, text
    for phrase in ("safe haven for paedophiles", "one-stop grooming shop", "place to hide in the shadows"):
        assert not any(phrase in text.lower() for case in cases for text in case.texts)


# ------------------------------------------------------------------------------- scoring


def test_always_neutral_passes_neutral_mfts_and_invariances_and_fails_the_rest(cases: list[Case]) -> None:
    results = run_suite(ConstantModel("neutral"), cases)
    by_type = results["by_type"]
    assert by_type["mft_furniture"]["pass_rate"] == 1.0
    assert by_type["mft_neutral_on_topic"]["pass_rate"] == 1.0
    assert by_type["mft_pro_encryption"]["pass_rate"] == 0.0
    assert by_type["mft_pro_scanning"]["pass_rate"] == 0.0
    assert by_type["dir_reported_opposite"]["pass_rate"] == 0.0  # no drop, no label change
    for test_type, kind in REQUIRED_TYPES.items():
        if kind == "INV":
            assert by_type[test_type]["pass_rate"] == 1.0
    n_expected = sum(1 for case in cases if case.kind == "INV" or (case.kind == "MFT" and case.expected == "neutral"))
    assert results["overall"]["passed"] == n_expected
    assert results["overall"]["pass_rate"] == pytest.approx(n_expected / len(cases))
    assert results["overall"]["macro_pass_rate"] == pytest.approx(
        np.mean([entry["pass_rate"] for entry in by_type.values()])
    )
    assert results["by_kind"]["DIR"]["passed"] == 0
    assert results["by_kind"]["INV"]["pass_rate"] == 1.0
    # the intended label of the INV originals is right only for the neutral ones
    swap = of_type(cases, "inv_org_country_swap")
    assert by_type["inv_org_country_swap"]["original_accuracy"] == pytest.approx(
        sum(case.expected == "neutral" for case in swap) / len(swap)
    )
    assert by_type["mft_furniture"]["original_accuracy"] is None


def test_always_pro_encryption_passes_only_its_own_mft(cases: list[Case]) -> None:
    by_type = run_suite(ConstantModel("pro-encryption"), cases)["by_type"]
    assert by_type["mft_pro_encryption"]["pass_rate"] == 1.0
    for test_type in ("mft_pro_scanning", "mft_furniture", "mft_neutral_on_topic", "dir_reported_opposite"):
        assert by_type[test_type]["pass_rate"] == 0.0
        assert by_type[test_type]["failures"]


def test_keyword_fake_passes_denials_only_of_the_side_it_predicts(cases: list[Case]) -> None:
    directional = of_type(cases, "dir_reported_opposite")
    # Only the 'denied' and 'rejected' variants: the fake drops pro-scanning on both, so exactly
    # the pro-scanning originals pass; for pro-encryption originals P(pro-encryption) rises (0.1 -> 0.2).
    denials = [dataclasses.replace(case, texts=case.texts[:3]) for case in directional]
    results = run_suite(RuleModel(denial_keyword_rule), denials)
    n_scanning = sum(case.expected == "pro-scanning" for case in denials)
    assert results["overall"]["n"] == len(denials)
    assert results["overall"]["passed"] == n_scanning
    assert results["by_type"]["dir_reported_opposite"]["pass_rate"] == pytest.approx(0.5)
    failures = results["by_type"]["dir_reported_opposite"]["failures"]
    assert failures and all(failure["expected"] == "pro-encryption" for failure in failures)
    # With the negated claim as well ('said that ... not ...': no cue word), nothing passes.
    assert run_suite(RuleModel(denial_keyword_rule), directional)["overall"]["passed"] == 0


def test_dir_pass_definition_on_hand_made_probabilities() -> None:
    case = Case("dir", "DIR", ("original", "variant"), "pro-scanning", "rule", "dir-000")
    same_label_lower = np.array([[0.8, 0.1, 0.1], [0.6, 0.1, 0.3]])
    unchanged = np.array([[0.8, 0.1, 0.1], [0.8, 0.1, 0.1]])
    tiny_drop = np.array([[0.8, 0.1, 0.1], [0.8 - DIR_MIN_DROP / 10, 0.1, 0.1 + DIR_MIN_DROP / 10]])
    higher = np.array([[0.5, 0.1, 0.4], [0.7, 0.1, 0.2]])
    label_moves_away = np.array([[0.4, 0.35, 0.25], [0.45, 0.5, 0.05]])
    assert case_passes(case, same_label_lower)
    assert not case_passes(case, unchanged)
    assert not case_passes(case, tiny_drop)
    assert not case_passes(case, higher)
    assert case_passes(case, label_moves_away)
    # every variant must pass
    two = dataclasses.replace(case, texts=("original", "a", "b"))
    assert not case_passes(two, np.array([[0.8, 0.1, 0.1], [0.5, 0.2, 0.3], [0.9, 0.05, 0.05]]))
    with pytest.raises(ValueError):
        case_passes(case, np.ones((3, 3)) / 3)


def test_inv_fails_exactly_where_the_swap_touches_a_trigger_word(cases: list[Case]) -> None:
    def europol_rule(text: str) -> list[float]:
        return [0.1, 0.8, 0.1] if "Europol" in text else [0.1, 0.1, 0.8]

    results = run_suite(RuleModel(europol_rule), cases)
    for test_type, kind in REQUIRED_TYPES.items():
        if kind != "INV":
            continue
        selected = of_type(cases, test_type)
        broken = sum(1 for case in selected if len({"Europol" in text for text in case.texts}) == 2)
        entry = results["by_type"][test_type]
        assert entry["passed"] == len(selected) - broken
        assert len(entry["failures"]) == min(3, broken)
    assert results["by_type"]["inv_speaker_swap"]["passed"] < len(of_type(cases, "inv_speaker_swap"))


def test_an_oracle_passes_everything(cases: list[Case]) -> None:
    wanted: dict[str, str] = {}

    def want(text: str, label: str) -> None:
        assert wanted.setdefault(text, label) == label, text

    for case in cases:
        if case.kind == "DIR":
            want(case.original, str(case.expected))
        else:
            for text in case.texts:
                want(text, str(case.expected))
    for case in cases:
        if case.kind == "DIR":
            for text in case.variants:
                want(text, "neutral")
    results = run_suite(RuleModel(lambda text: one_hot(wanted[text], 1)[0]), cases)
    assert results["overall"]["pass_rate"] == 1.0
    assert all(entry["failures"] == [] for entry in results["by_type"].values())
    assert all(entry["original_accuracy"] == 1.0 for entry in results["by_type"].values() if entry["kind"] != "MFT")


def test_the_model_is_called_once_on_the_unique_texts(cases: list[Case]) -> None:
    model = RuleModel(denial_keyword_rule)
    results = run_suite(model, cases)
    assert len(model.calls) == 1
    batch = model.calls[0]
    assert len(batch) == len(set(batch)) == results["n_texts"]
    assert set(batch) == {text for case in cases for text in case.texts}


def test_failures_are_capped() -> None:
    cases = [Case("mft", "MFT", (f"text {i}",), "pro-scanning", "rule", f"mft-{i:03d}") for i in range(10)]
    results = run_suite(ConstantModel("neutral"), cases, max_failures=2)
    entry = results["by_type"]["mft"]
    assert entry["n"] == 10 and entry["passed"] == 0
    assert [failure["case_id"] for failure in entry["failures"]] == ["mft-000", "mft-001"]
    assert entry["failures"][0]["predicted"] == ["neutral"]
    assert entry["failures"][0]["p_expected"] == [0.0]


def test_bad_inputs_raise(cases: list[Case]) -> None:
    with pytest.raises(ValueError):
        run_suite(ConstantModel("neutral"), [])
    with pytest.raises(ValueError):
        run_suite(RuleModel(lambda text: [1.0, 0.0]), cases[:5])
    with pytest.raises(ValueError):
        run_suite(RuleModel(lambda text: [float("nan"), 0.0, 1.0]), cases[:5])


def test_format_results_lists_every_type(cases: list[Case]) -> None:
    text = format_results(run_suite(ConstantModel("neutral"), cases))
    for test_type in REQUIRED_TYPES:
        assert test_type in text
    assert "overall" in text


# ------------------------------------------------------------------------- template errors


def test_missing_file_raises(tmp_path) -> None:
    with pytest.raises(FileNotFoundError):
        build_cases(tmp_path / "absent.json")


@pytest.mark.parametrize(
    "test",
    [
        {"name": "x", "kind": "XYZ", "rule": "r", "generator": "sentences", "sentences": ["a"], "expected": "neutral"},
        {"name": "x", "kind": "MFT", "rule": "r", "generator": "sentences", "sentences": ["a"], "expected": "happy"},
        {
            "name": "x",
            "kind": "MFT",
            "rule": "r",
            "generator": "sentences",
            "sentences": ["{nope}"],
            "expected": "neutral",
        },
        {"name": "x", "kind": "MFT", "rule": "r", "generator": "unknown", "expected": "neutral"},
        {
            "name": "x",
            "kind": "INV",
            "rule": "r",
            "generator": "swap",
            "vary": ["speaker"],
            "n_variants": 5,
            "items": [{"label": "neutral", "text": "{speaker} spoke."}],
        },
        {
            "name": "x",
            "kind": "DIR",
            "rule": "r",
            "generator": "claims",
            "frames": ["{claim}."],
            "variants": ["{claim}."],
        },
    ],
)
def test_malformed_templates_raise(tmp_path, test: dict) -> None:
    spec = {
        "lexicons": {"speaker": ["A", "B"]},
        "claims": {"pro-scanning": [{"claim": "scan it", "negated": "do not scan it"}]},
        "tests": [test],
    }
    path = tmp_path / "templates.json"
    path.write_text(json.dumps(spec))
    with pytest.raises(TemplateError):
        build_cases(path)


def test_module_import_does_not_load_torch() -> None:
    code = "import sys, stance.evaluation.behavioural; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
