import json

import numpy as np
import pytest

from stance.data.loaders import seed_rows, supplement_rows
from stance.evaluation.metrics import bootstrap_ci, compute_metrics, paired_comparison
from stance.evaluation.protocol import (
    Fold,
    FoldLeakError,
    check_folds,
    cross_validate,
    group_kfold_folds,
    lodo_folds,
    tune,
)
from stance.evaluation.specs import ModelSpec
from stance.labels import LABEL_TO_ID, LABELS
from stance.models import FAMILIES
from stance.models.reference import KeywordRuleModel, MajorityModel


@pytest.fixture(scope="module")
def seeds():
    rows = seed_rows()
    return ([r["text"] for r in rows], [r["label"] for r in rows], np.array([r["doc"] for r in rows]),
            np.array([r["group"] for r in rows]))


def test_lodo_never_splits_a_document_or_a_group(seeds):
    _, _, docs, groups = seeds
    folds = lodo_folds(docs, groups)
    assert len(folds) == 5
    check_folds(folds, groups, docs)
    # a held-out document's near-duplicates in other documents are dropped from training
    purged = sum(len(docs) - len(f.train) - len(f.test) for f in folds)
    assert purged > 0


def test_repeated_group_kfold_never_splits_a_group(seeds):
    _, labels, _, groups = seeds
    for repeat in range(3):
        folds = group_kfold_folds(labels, groups, 5, repeat, seed=13)
        check_folds(folds, groups)
        tested = np.sort(np.concatenate([f.test for f in folds]))
        assert (tested == np.arange(len(labels))).all()


def test_a_leaky_fold_is_caught(seeds):
    _, _, docs, groups = seeds
    shared = np.flatnonzero(groups == groups[0])
    assert len(shared) >= 2
    leaky = Fold("leaky", np.array([shared[0]]), np.array([shared[1]]))
    with pytest.raises(FoldLeakError):
        check_folds([leaky], groups)


class SpyModel(MajorityModel):
    """Records every text it is trained on, to prove what tuning saw."""

    family = "spy"
    seen: list[str] = []

    def __init__(self, seed: int = 0, C: float = 1.0) -> None:
        super().__init__(seed)
        self.C = C

    def fit(self, texts, labels, contexts=None):
        SpyModel.seen.extend(texts)
        return super().fit(texts, labels, contexts)


def test_tuning_never_sees_the_outer_test_fold(seeds, monkeypatch):
    texts, labels, docs, groups = seeds
    monkeypatch.setitem(FAMILIES, "spy", f"{__name__}:SpyModel")
    spec = ModelSpec("spy", "spy", {}, {"C": [1.0, 2.0]})
    extra = supplement_rows()[:20]
    extra_pair = ([r["text"] for r in extra], [r["label"] for r in extra])
    extra_rows = (*extra_pair, [""] * len(extra))
    folds = lodo_folds(docs, groups)
    for fold in folds:
        SpyModel.seen = []
        _, seen_rows = tune(spec, texts, labels, docs, groups, fold.train, extra_rows, "lodo", 0)
        assert seen_rows and not set(seen_rows) & set(fold.test.tolist())
        # every fit during tuning trained only on outer-training rows and the supplement
        allowed = {texts[i] for i in fold.train} | set(extra_pair[0])
        assert set(SpyModel.seen) <= allowed
        assert not set(SpyModel.seen) & ({texts[i] for i in fold.test} - allowed)
    run = cross_validate(spec, texts, labels, docs, groups, folds, *extra_pair)
    for fold in folds:
        assert not set(run.tuning_rows[fold.name]) & set(fold.test.tolist())


def test_metrics_on_a_known_case():
    y = np.array([0, 0, 1, 2, 2, 2])
    proba = np.eye(3)[[0, 1, 1, 2, 2, 0]]
    m = compute_metrics(y, proba)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["per_class"]["pro-scanning"]["f1"] == pytest.approx(2 * 0.5 * 0.5 / 1.0)
    assert m["per_class"]["pro-encryption"]["f1"] == pytest.approx(2 / 3)
    assert m["f_avg"] == pytest.approx((0.5 + 2 / 3) / 2)
    assert m["confusion"] == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert m["ece"] == pytest.approx(abs(4 / 6 - 1.0))


def test_bootstrap_ci_brackets_the_estimate_and_documents_widen_it():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    pred = np.where(rng.random(200) < 0.7, y, rng.integers(0, 3, 200))
    docs = np.repeat(np.arange(5), 40)
    low, high = bootstrap_ci(y, [pred], None, 300, 0)
    dlow, dhigh = bootstrap_ci(y, [pred], docs, 300, 0)
    from stance.evaluation.metrics import macro_f1

    assert low <= macro_f1(y, pred) <= high
    assert high - low > 0 and dhigh - dlow > 0


def test_paired_comparison_sees_a_real_difference():
    y = np.array([LABEL_TO_ID[label] for label in LABELS * 40])
    perfect, wrong = y.copy(), (y + 1) % 3
    result = paired_comparison(y, [perfect], [wrong], n_boot=200)
    assert result["difference"] == pytest.approx(1.0)
    assert result["p_not_better"] == 0.0


def test_keyword_rule_is_frozen_and_meets_the_contract():
    model = KeywordRuleModel().fit(["x"], ["neutral"])
    assert model.predict(["Facebook is a safe haven for paedophiles", "Scanning is mass surveillance",
                          "The vote is on Tuesday"]) == ["pro-scanning", "pro-encryption", "neutral"]
    assert model.predict_proba(["a", "b"]).sum(axis=1) == pytest.approx([1.0, 1.0])


def test_several_training_seeds_per_fold_and_capped_repeats():
    from stance.evaluation.runner import evaluate_spec

    spec = ModelSpec("random", "stratified-random", seeds_per_fold=3, max_repeats=2)
    result, oof = evaluate_spec(spec, extra="none", repeats=5, n_boot=20, challenge=False)
    assert result["lodo"]["repeats"] == 3 and len(oof["lodo"]) == 3
    assert result["kfold"]["repeats"] == 2 and len(oof["kfold"]) == 2
    # different training seeds give different random guesses, so the spread is real
    assert result["lodo"]["macro_f1_sd_over_repeats"] > 0
    assert not np.array_equal(oof["lodo"][0], oof["lodo"][1])


def test_grid_settings_resume_only_when_nothing_changed(tmp_path, monkeypatch):
    from stance.evaluation import runner

    spec = ModelSpec("majority", "majority")
    first, first_oof = runner._evaluate_or_resume(spec, False, 1, 20, tmp_path)
    assert (tmp_path / "majority.json").exists()

    def must_not_run(*args, **kwargs):
        raise AssertionError("a saved, unchanged setting was evaluated again")

    monkeypatch.setattr(runner, "evaluate_spec", must_not_run)
    again, again_oof = runner._evaluate_or_resume(spec, False, 1, 20, tmp_path)
    assert again["lodo"] == json.loads(json.dumps(first["lodo"], default=float))
    assert [p.tolist() for p in again_oof["lodo"]] == [p.tolist() for p in first_oof["lodo"]]
    with pytest.raises(AssertionError, match="evaluated again"):
        runner._evaluate_or_resume(spec, False, 2, 20, tmp_path)  # more repeats: a new setting


def test_a_single_inner_split_tunes_on_one_stratified_hold_out_of_the_outer_training_rows(seeds, monkeypatch):
    texts, labels, docs, groups = seeds
    monkeypatch.setitem(FAMILIES, "spy", f"{__name__}:SpyModel")
    fold = lodo_folds(docs, groups)[2]
    full = ModelSpec("spy", "spy", {}, {"C": [1.0, 2.0]})
    single = ModelSpec("spy", "spy", {}, {"C": [1.0, 2.0]}, single_inner_split=True)
    SpyModel.seen = []
    tune(full, texts, labels, docs, groups, fold.train, ([], [], []), "lodo", 0)
    fits_full = len(SpyModel.seen)
    SpyModel.seen = []
    _, seen_rows = tune(single, texts, labels, docs, groups, fold.train, ([], [], []), "lodo", 0)
    # two grid points, one fit each, on about two thirds of the outer training rows
    train_share = len(SpyModel.seen) / 2 / len(fold.train)
    assert 0.5 < train_share < 0.8 and len(SpyModel.seen) < fits_full
    assert set(seen_rows) <= set(fold.train.tolist())
    held_out = sorted(set(fold.train.tolist()) - {i for i in fold.train if texts[i] in set(SpyModel.seen)})
    # the hold-out keeps every label so that macro-F1 can rank the settings
    assert {labels[i] for i in held_out} == set(LABELS)


def test_seeds_of_one_fold_share_its_tuning(seeds, monkeypatch):
    texts, labels, docs, groups = seeds
    monkeypatch.setitem(FAMILIES, "spy", f"{__name__}:SpyModel")
    spec = ModelSpec("spy", "spy", {}, {"C": [1.0, 2.0]}, single_inner_split=True)
    folds = lodo_folds(docs, groups)
    tuned: dict = {}
    SpyModel.seen = []
    first = cross_validate(spec, texts, labels, docs, groups, folds, seed=0, tuned=tuned)
    fits_first = len(SpyModel.seen)
    SpyModel.seen = []
    second = cross_validate(spec, texts, labels, docs, groups, folds, seed=1, tuned=tuned)
    # the second seed only refits the outer folds: no tuning fits
    assert len(SpyModel.seen) == sum(len(f.train) for f in folds) < fits_first
    assert second.chosen_params == first.chosen_params and set(tuned) == {f.name for f in folds}


def test_a_later_spec_option_changes_the_fingerprint_only_when_switched_on():
    from dataclasses import dataclass, field

    from stance.evaluation import runner

    @dataclass(frozen=True)
    class SpecBeforeTheOption:  # ModelSpec's fields when the first full grid was run
        name: str
        family: str
        params: dict = field(default_factory=dict)
        grid: dict = field(default_factory=dict)
        seeds_per_fold: int = 1
        max_repeats: int | None = None

    before = SpecBeforeTheOption("spy", "spy", {}, {"C": [1.0, 2.0]}, 3, 1)
    off = ModelSpec("spy", "spy", {}, {"C": [1.0, 2.0]}, seeds_per_fold=3, max_repeats=1)
    on = ModelSpec("spy", "spy", {}, {"C": [1.0, 2.0]}, seeds_per_fold=3, max_repeats=1, single_inner_split=True)
    assert runner._fingerprint(off, False, 1, 20) == runner._fingerprint(before, False, 1, 20)
    assert runner._fingerprint(on, False, 1, 20) != runner._fingerprint(off, False, 1, 20)


def test_the_results_table_lists_the_settings_inner_cv_chose():
    from stance.evaluation.tables import _tuning_lines

    results = {
        "tfidf-logreg": {"grid": {"C": [1.0, 10.0]}, "final_params": {"C": 10.0},
                         "lodo": {"chosen_params": [{"lodo:a": {"C": 1.0}, "lodo:b": {"C": 10.0}, "lodo:c": {"C": 10.0}}]},
                         "kfold": {"chosen_params": [{"kfold:r0f0": {"C": 1.0}}, {"kfold:r1f0": {"C": 1.0}}]}},
        "majority": {"grid": {}, "lodo": {"chosen_params": [{}]}, "kfold": {"chosen_params": [{}]}},
    }
    lines = _tuning_lines(results)
    row = next(line for line in lines if line.startswith("| tfidf-logreg"))
    assert row == "| tfidf-logreg | C: 1, 10 | C=1 (1); C=10 (2) | C=1 (2) | C=10 (1) |"
    assert not any(line.startswith("| majority") for line in lines)
    assert _tuning_lines({"majority": results["majority"]}) == []


def test_a_tuned_spec_records_its_chosen_and_final_settings(monkeypatch):
    from stance.evaluation.runner import evaluate_spec

    monkeypatch.setitem(FAMILIES, "spy", f"{__name__}:SpyModel")
    spec = ModelSpec("spy", "spy", {}, {"C": [1.0, 2.0]}, seeds_per_fold=2, max_repeats=1, single_inner_split=True)
    result, _ = evaluate_spec(spec, extra="none", repeats=3, n_boot=20)
    lodo_choices = result["lodo"]["chosen_params"]
    assert len(lodo_choices) == 2 and lodo_choices[0] == lodo_choices[1]  # the seeds share each fold's tuning
    assert len(lodo_choices[0]) == 5 and all(p["C"] in (1.0, 2.0) for p in lodo_choices[0].values())
    assert len(result["kfold"]["chosen_params"]) == 1
    assert result["final_params"]["C"] in (1.0, 2.0) and "macro_f1" in result["challenge"]


def test_shipping_a_model_replaces_the_whole_folder(tmp_path):
    from stance.evaluation.shipping import train_and_save
    from stance.evaluation.specs import BASELINE_SPECS
    from stance.models import load_model

    folder = tmp_path / "transformer"
    folder.mkdir()
    (folder / "head.npz").write_bytes(b"left by a model of another family")
    (folder / "encoder").mkdir()
    model, seconds = train_and_save(BASELINE_SPECS[0], folder, extra="none")
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "tfidf.npz", "vocabulary.json"]
    assert not (tmp_path / ".transformer.partial").exists() and seconds >= 0
    assert load_model(folder).predict(["Encryption protects everyone."]) == model.predict(["Encryption protects everyone."])


def test_macro_f1_equals_scikit_learn():
    from sklearn.metrics import f1_score

    from stance.evaluation.metrics import macro_f1

    rng = np.random.default_rng(0)
    for n in (1, 2, 5, 40, 300):
        for _ in range(20):
            y, pred = rng.integers(0, 3, n), rng.integers(0, 3, n)
            if n > 2:
                pred[: n // 3] = 2  # some labels absent from one side
            expected = f1_score(y, pred, labels=range(3), average="macro", zero_division=0)
            assert abs(macro_f1(y, pred) - expected) < 1e-12


def test_the_evaluation_and_data_packages_document_each_module_and_load_without_torch():
    import pkgutil
    import subprocess
    import sys
    from pathlib import Path

    import stance.data
    import stance.evaluation

    names = [f"{package.__name__}.{info.name}" for package in (stance.data, stance.evaluation)
             for info in pkgutil.iter_modules(package.__path__)]
    assert {"stance.data.loaders", "stance.data.build", "stance.evaluation.runner", "stance.evaluation.selection",
            "stance.evaluation.shipping"} <= set(names)
    # every module of the two flows is importable alone (no import cycle), says its job, and leaves torch unloaded
    code = ("import importlib, sys\n"
            f"for name in {names!r}:\n"
            "    module = importlib.import_module(name)\n"
            "    assert (module.__doc__ or '').strip(), name + ' has no docstring'\n"
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    # the modules they replace are gone (looked up as files: an editable install elsewhere could still find them)
    root = Path(stance.data.__file__).parent.parent
    for old in ("experiment", "pipeline", "tables", "behavioural", "build", "articles", "agreement", "similarity",
                "data", "evaluation"):
        assert not (root / f"{old}.py").exists(), old
