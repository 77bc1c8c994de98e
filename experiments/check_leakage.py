"""One-off leakage control for the contrast data, run once before the test set is frozen.

The test sets and the training contrast groups were written at the same time by writers who never
saw each other's files, so a near duplicate is resolved on the side that is cheaper to lose:

* Contrast test groups that nearly duplicate a seed or supplement sentence (training data that
  existed before, and stays: the seed evaluation needs every seed) are dropped whole, into
  ``data/contrast_test/excluded.csv``.
* Training contrast groups that nearly duplicate a test sentence (contrast test, challenge,
  behavioural suite, article test) are dropped whole, into ``data/contrast/excluded.csv``.
* Mini-article sentences of 6+ words that nearly duplicate a test sentence are listed in
  ``data/articles/leakage.csv`` and left out of training (their articles stay whole, so they still
  serve as context for their neighbours).
Near-duplicates are :func:`stance.data.similarity.near_duplicates_across` (text rules, or MiniLM
embedding cosine >= 0.85). Then writes ``data/contrast_test/FROZEN`` with the set's sha256.
"""

import sys
from pathlib import Path

from stance.data.build import FROZEN_FILE
from stance.data.files import read_csv, write_csv
from stance.data.loaders import (
    article_rows,
    challenge_rows,
    contrast_rows,
    contrast_test_rows,
    seed_rows,
    supplement_rows,
)
from stance.data.similarity import near_duplicates_across
from stance.evaluation.behavioural import build_cases
from stance.models.hf import file_sha256

DATA = Path(__file__).resolve().parents[1] / "data"


def held_out_texts() -> list[str]:
    """Every sentence no training row may nearly duplicate: the challenge set, the behavioural suite
    (its probes included), the contrast test and the article test's sentences of 6+ words."""
    behaviour = [text for case in build_cases() for text in case.texts]
    return ([r["text"] for r in challenge_rows()] + behaviour + [r["text"] for r in contrast_test_rows()]
            + [r["text"] for r in article_rows("article_test") if len(r["text"].split()) >= 6])


def drop_groups(name: str, rows: list[dict], reference: list[str], why: str) -> set[str]:
    """Drop from ``data/<name>/<name>.csv`` every group of ``rows`` with a sentence near ``reference``
    (recorded in ``excluded.csv`` with the sentence it is near and why); returns the dropped groups."""
    found = near_duplicates_across([r["text"] for r in rows], reference)
    groups = {rows[i]["group"] for i in found}
    path = DATA / name / f"{name}.csv"
    all_rows = read_csv(path)
    kept = [r for r in all_rows if r["group"] not in groups]
    dropped = [{**r, "near_duplicate_of": "", "reason": ""} for r in all_rows if r["group"] in groups]
    index = {r["id"]: k for k, r in enumerate(rows)}
    for r in dropped:
        hit = found.get(index[r["id"]])
        if hit:
            r["near_duplicate_of"], r["reason"] = reference[hit[0]], f"{hit[1]} ({why})"
        else:
            r["reason"] = "member of a group with a near-duplicate"
    write_csv(path, kept, list(all_rows[0]))
    excluded = DATA / name / "excluded.csv"
    earlier = read_csv(excluded) if excluded.exists() else []
    write_csv(excluded, earlier + dropped, [*all_rows[0], "near_duplicate_of", "reason"])
    print(f"{name}: dropped {len(groups)} groups ({len(dropped)} sentences), kept {len(kept)}")
    return groups


def main() -> None:
    if (DATA / "contrast_test" / FROZEN_FILE).exists() and "--force" not in sys.argv:
        sys.exit("the contrast test set is frozen; its leakage check has run")
    articles = [r for r in article_rows("articles") if len(r["text"].split()) >= 6]
    drop_groups("contrast_test", contrast_test_rows(), [r["text"] for r in seed_rows() + supplement_rows()],
                "seed or supplement sentence")
    tests = held_out_texts()
    drop_groups("contrast", contrast_rows(), tests, "test sentence")
    found = near_duplicates_across([r["text"] for r in articles], tests)
    write_csv(DATA / "articles" / "leakage.csv",
              [{"id": articles[i]["id"], "text": articles[i]["text"], "near_duplicate_of": tests[j], "reason": why}
               for i, (j, why) in sorted(found.items())], ["id", "text", "near_duplicate_of", "reason"])
    print(f"articles: {len(found)} of {len(articles)} sentences near a test sentence (left out of training)")
    (DATA / "contrast_test" / FROZEN_FILE).write_text(file_sha256(DATA / "contrast_test" / "contrast_test.csv") + "\n")


if __name__ == "__main__":
    main()
