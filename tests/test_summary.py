"""The article summary separates how much an article takes a side from which way (issue 18, item 1)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from stance.aggregate import summarise
from stance.labels import LABELS
from stance.scoring.kernel import ARTICLE_COLUMNS, Kernel
from stance.scoring.readers import Article

ENC, SCAN, NEU = (LABELS.index(x) for x in ("pro-encryption", "pro-scanning", "neutral"))


def sentence(label: str, p: float = 0.9) -> list[float]:
    row = [(1 - p) / 2] * len(LABELS)
    row[LABELS.index(label)] = p
    return row


class KeywordModel:
    """Labels a sentence by a marker word in it, so the articles below have known sentence labels."""

    def predict_proba(self, texts, contexts=None):
        out = []
        for t in texts:
            label = "pro-encryption" if "[E]" in t else "pro-scanning" if "[S]" in t else "neutral"
            out.append(sentence(label))
        return np.array(out)


def article(*labels: str) -> str:
    marks = {"pro-encryption": "[E]", "pro-scanning": "[S]", "neutral": ""}
    return "\n".join(f"Sentence {i} says {marks[label]} something." for i, label in enumerate(labels))


# four hand-made articles: 20 sentences each
NEUTRAL_REPORT = article(*["neutral"] * 19, "pro-encryption")
BALANCED_DEBATE = article(*["pro-encryption", "pro-scanning"] * 8, *["neutral"] * 4)
PRO_ENCRYPTION = article(*["pro-encryption"] * 14, *["neutral"] * 6)
PRO_SCANNING = article(*["pro-scanning"] * 15, "pro-encryption", *["neutral"] * 4)


@pytest.fixture(scope="module")
def rows() -> dict[str, dict]:
    kernel = Kernel(KeywordModel(), "keyword", "0" * 64)
    texts = {"neutral": NEUTRAL_REPORT, "balanced": BALANCED_DEBATE, "enc": PRO_ENCRYPTION, "scan": PRO_SCANNING}
    scored = kernel.rows([Article("hand", name, text) for name, text in texts.items()])
    return {name: row for name, (_, row) in zip(texts, scored)}


def test_a_neutral_report_has_low_engagement_and_an_index_near_zero(rows):
    row = rows["neutral"]
    assert row["engagement"] == pytest.approx(1 / 20)
    # one sided sentence: today's net_stance would call this +1.00 like a campaign essay; balance does too,
    # but engagement and the stance index show it is a report
    assert row["balance"] == 1.0 and row["net_stance"] == 1.0
    assert abs(row["stance_index"]) < 0.1 and row["article_label"] == "neutral coverage"


def test_a_balanced_debate_has_high_engagement_and_an_index_near_zero(rows):
    row = rows["balanced"]
    assert row["engagement"] == pytest.approx(16 / 20) and row["balance"] == 0.0
    assert row["stance_index"] == pytest.approx(0.0, abs=1e-12) and row["article_label"] == "mixed"
    assert row["stance_index_ci_low"] < 0 < row["stance_index_ci_high"]


@pytest.mark.parametrize("name,sign,label", [("enc", 1, "pro-encryption"), ("scan", -1, "pro-scanning")])
def test_one_sided_pieces_have_high_engagement_and_the_right_sign(rows, name, sign, label):
    row = rows[name]
    assert row["engagement"] >= 0.7 and sign * row["stance_index"] > 0.5 and sign * row["balance"] > 0.8
    assert row["article_label"] == label
    assert sign * row["stance_index_ci_low"] > 0 if sign > 0 else sign * row["stance_index_ci_high"] > 0
    side = "pro-encryption" if sign > 0 else "pro-scanning"
    top = row[f"top_{side}"]
    assert len(top) == 3 and all(t["p"] == pytest.approx(0.9) for t in top)
    assert [t["index"] for t in top] == sorted(t["index"] for t in top)  # ties keep article order


def test_the_definitions_by_hand():
    proba = np.array([sentence("pro-encryption", 0.8), sentence("pro-scanning", 0.6), sentence("neutral", 0.9),
                      sentence("neutral", 0.5)])
    s = summarise(proba)
    assert (s["n_pro-encryption"], s["n_pro-scanning"], s["n_neutral"]) == (1, 1, 2)
    assert s["engagement"] == 0.5 and s["balance"] == 0.0
    p_enc, p_scan = proba[:, ENC].sum(), proba[:, SCAN].sum()
    assert s["stance_index"] == pytest.approx((p_enc - p_scan) / 4)
    assert s["engagement_expected"] == pytest.approx((p_enc + p_scan) / 4)
    for name in ("engagement", "balance", "stance_index"):
        assert s[f"{name}_ci_low"] <= s[name] <= s[f"{name}_ci_high"]
    assert summarise(proba) == s  # the bootstrap is seeded: the same article, the same interval


def test_no_sided_sentence_leaves_balance_empty():
    s = summarise(np.array([sentence("neutral")] * 5))
    assert s["balance"] is None and s["balance_ci_low"] is None and s["net_stance"] == 0.0
    assert s["engagement"] == 0.0 and s["article_label"] == "neutral coverage"
    empty = summarise(np.zeros((0, len(LABELS))))
    assert empty["n_sentences"] == 0 and empty["stance_index"] is None


def test_csv_leaves_an_empty_balance_cell_and_writes_top_sentences_as_json(tmp_path):
    import csv

    from stance.scoring.local import write_scores

    kernel = Kernel(KeywordModel(), "keyword", "0" * 64)
    articles = [Article("hand", "neutral", article("neutral", "neutral")), Article("hand", "enc", PRO_ENCRYPTION)]
    write_scores(articles, kernel, tmp_path, "csv")
    with (tmp_path / "articles.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ARTICLE_COLUMNS
    assert rows[0]["balance"] == "" and rows[0]["top_pro-encryption"] == "[]"
    assert len(json.loads(rows[1]["top_pro-encryption"])) == 3


def test_formula_like_cells_are_neutralised_for_spreadsheets(tmp_path):
    import csv

    from stance.scoring.local import write_scores

    kernel = Kernel(KeywordModel(), "keyword", "0" * 64)
    text = '=HYPERLINK("http://example.invalid","click") [E] now.\n-1 is a number [S] here.'
    write_scores([Article("hand", "=cmd", text)], kernel, tmp_path / "x", "csv", excel=True)
    write_scores([Article("hand", "=cmd", text)], kernel, tmp_path / "plain", "csv")
    with (tmp_path / "x" / "sentences.csv").open(encoding="utf-8-sig", newline="") as handle:
        excel = list(csv.DictReader(handle))
    assert (tmp_path / "x" / "sentences.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    assert excel[0]["text"].startswith("'=HYPERLINK") and excel[0]["doc_id"] == "'=cmd"
    assert excel[1]["text"].startswith("'-1 is")
    assert float(excel[0]["p_neutral"]) > 0  # numbers stay numbers
    with (tmp_path / "plain" / "sentences.csv").open(encoding="utf-8", newline="") as handle:
        assert next(csv.DictReader(handle))["text"].startswith("=HYPERLINK")


def test_kept_fields_reach_both_row_kinds_with_a_prefix_on_collision(tiny_baseline, tmp_path):
    from stance.scoring.local import score_files

    rows = [{"id": "a1", "text": "Encryption protects everyone. The vote is on Tuesday.", "outlet": "Ledger",
             "date": "2024-05-01", "label": "op-ed", "n": 3},
            {"id": "a2", "outlet": "Wire"}]
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    score_files([path], tmp_path / "out", model=tiny_baseline, keep_fields=["outlet", "date", "label", "n", "url"])
    articles = [json.loads(line) for line in (tmp_path / "out" / "articles.jsonl").read_text().splitlines()]
    sentences = [json.loads(line) for line in (tmp_path / "out" / "sentences.jsonl").read_text().splitlines()]
    assert list(articles[0])[-5:] == ["outlet", "date", "meta_label", "n", "url"]
    assert (articles[0]["outlet"], articles[0]["meta_label"], articles[0]["n"], articles[0]["url"]) == \
        ("Ledger", "op-ed", "3", None)
    assert articles[1]["error"] and articles[1]["outlet"] == "Wire"  # error rows keep their metadata
    assert {s["outlet"] for s in sentences} == {"Ledger"} and "text" not in list(sentences[0])[-5:]


def test_one_sentence_has_no_interval():
    s = summarise(np.array([sentence("pro-encryption")]))
    assert s["stance_index"] == pytest.approx(0.85) and s["engagement"] == 1.0
    assert all(s[f"{name}_ci_{edge}"] is None for name in ("engagement", "balance", "stance_index")
               for edge in ("low", "high"))
