import csv
import shutil
from pathlib import Path

import pytest

from stance.data.annotations import AnnotationError
from stance.data.build import build
from stance.data.loaders import challenge_rows, load_dataset, seed_rows, supplement_rows
from stance.data.sentences import build_sentence_table
from stance.data.similarity import near_duplicates_across
from stance.labels import LABELS, UnknownLabelError

ROOT = Path(__file__).resolve().parents[1]


def test_every_seed_sentence_has_exactly_one_label():
    table = build_sentence_table()
    rows = seed_rows()
    assert [r["id"] for r in rows] == [t.id for t in table]
    assert len({r["id"] for r in rows}) == len(rows) == 113
    assert all(r["label"] in LABELS for r in rows)


def test_seeds_are_verbatim_copies():
    shared = ROOT.parent / "shared" / "seeds"
    if not shared.exists():
        pytest.fail("../shared/seeds must sit beside the project")
    for original in shared.glob("*.txt"):
        assert (ROOT / "seeds" / original.name).read_bytes() == original.read_bytes()


def test_known_copies_share_a_group_across_documents():
    by_text = {r.text: r for r in build_sentence_table()}
    a = by_text["The Home Secretary has met representatives from Meta and our officials are in regular contact."]
    b = next(r for t, r in by_text.items() if t.startswith("“The Home Secretary has met with representatives"))
    assert a.group == b.group and a.doc != b.doc


def test_build_reports_counts_groups_and_kappa():
    summary = build()
    assert summary["sentences"] == 113
    assert summary["groups_spanning_documents"] >= 2
    assert {a["name"] for a in summary["agreement"]} == {"seeds", "supplement", "challenge", "contrast", "contrast_test",
                                                         "articles", "article_test"}
    assert all(a["kappa"] > 0.9 for a in summary["agreement"])
    assert all(0 < a["kappa"] <= 1 for a in summary["agreement"])


def _copy_data(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(ROOT / "data", data)
    return data


def _rewrite(path: Path, change) -> None:
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    fields = list(rows[0])
    rows = change(rows)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def test_missing_label_names_the_sentence(tmp_path):
    data = _copy_data(tmp_path)
    _rewrite(data / "annotations.csv", lambda rows: rows[1:])
    with pytest.raises(AnnotationError, match="000_fb04771064e37d9c-000"):
        build(data)


def test_unknown_label_names_the_sentence(tmp_path):
    data = _copy_data(tmp_path)
    _rewrite(data / "annotations.csv", lambda rows: [{**rows[0], "label": "pro-cats"}, *rows[1:]])
    with pytest.raises(UnknownLabelError, match="000_fb04771064e37d9c-000"):
        build(data)


def test_orphan_annotation_is_refused(tmp_path):
    data = _copy_data(tmp_path)
    _rewrite(data / "annotations.csv", lambda rows: [*rows, {**rows[0], "id": "999_gone-000"}])
    with pytest.raises(AnnotationError, match="999_gone-000"):
        build(data)


def test_supplement_and_challenge_pass_the_same_label_checks(tmp_path):
    assert len(supplement_rows()) >= 600 and len(challenge_rows()) >= 150
    data = _copy_data(tmp_path)
    _rewrite(data / "challenge" / "challenge.csv", lambda rows: [{**rows[0], "label": "maybe"}, *rows[1:]])
    with pytest.raises(UnknownLabelError, match=r"ch\d{4}"):
        challenge_rows(data)


def test_supplement_meets_its_brief():
    rows = supplement_rows()
    for label in LABELS:
        assert sum(r["label"] == label for r in rows) >= 180
    families = {}
    for r in rows:
        families.setdefault((r["written_label"], r["family"]), 0)
        families[(r["written_label"], r["family"])] += 1
    for side in ("pro-encryption", "pro-scanning"):
        side_families = {f: n for (lab, f), n in families.items() if lab == side}
        assert len(side_families) >= 12 and min(side_families.values()) >= 10


def test_no_challenge_sentence_nearly_duplicates_a_training_sentence():
    training = [r["text"] for r in seed_rows()] + [r["text"] for r in supplement_rows()]
    challenge = [r["text"] for r in challenge_rows()]
    assert near_duplicates_across(challenge, training) == {}


def test_loader_returns_a_dataset_with_the_columns():
    ds = load_dataset(include_supplement=True)
    assert {"text", "label", "doc", "group", "source"} <= set(ds.column_names)
    assert set(ds["source"]) == {"seed", "supplement"}
    assert "challenge" not in set(ds["source"])
