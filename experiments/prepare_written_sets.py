"""One-off: turn the writers' files into the supplement and challenge sets and blind files.

* supplement: merges data/supplement/parts/*.csv, shuffles (seeded), assigns ids sup0001...,
  and drops rows that nearly duplicate a seed sentence (they would leak into LODO test folds);
* challenge: drops rows of data/challenge/challenge_written.csv that nearly duplicate a seed or
  supplement sentence (text rules or embedding cosine >= 0.85);
* writes the dropped rows with their reason to excluded.csv, and shuffled id,text files with
  the labels hidden (blind.csv) for the second labelling pass.

It refuses to overwrite the sets once they exist: after adjudication they hold final labels.
"""

import random
import sys
from pathlib import Path

from stance.data.files import read_csv, write_csv
from stance.data.loaders import seed_rows
from stance.data.similarity import near_duplicates_across
from stance.evaluation.specs import SEED

DATA = Path(__file__).resolve().parents[1] / "data"
FIELDS = ["id", "text", "label", "written_label", "family", "register", "speaker_kind", "note"]


def _split(rows, reference_texts):
    dups = near_duplicates_across([r["text"] for r in rows], reference_texts)
    kept = [r for i, r in enumerate(rows) if i not in dups]
    dropped = [{**rows[i], "near_duplicate_of": reference_texts[j], "reason": why} for i, (j, why) in dups.items()]
    return kept, dropped


def main() -> None:
    if (DATA / "supplement" / "supplement.csv").exists() and "--force" not in sys.argv:
        sys.exit("supplement.csv exists; it holds adjudicated labels. Use --force to rebuild from the parts.")
    seeds = [r["text"] for r in seed_rows()]
    parts = [row for name in ("pro_encryption", "pro_scanning", "neutral")
             for row in read_csv(DATA / "supplement" / "parts" / f"{name}.csv")]
    random.Random(SEED).shuffle(parts)
    kept, dropped = _split(parts, seeds)
    supplement = [{**r, "id": f"sup{k:04d}", "written_label": r["label"]} for k, r in enumerate(kept, 1)]
    write_csv(DATA / "supplement" / "supplement.csv", supplement, FIELDS)
    write_csv(DATA / "supplement" / "excluded.csv", dropped, [*FIELDS[1:], "near_duplicate_of", "reason"])

    written = read_csv(DATA / "challenge" / "challenge_written.csv")
    kept_ch, dropped_ch = _split(written, seeds + [r["text"] for r in supplement])
    challenge = [{**r, "written_label": r["label"]} for r in kept_ch]
    write_csv(DATA / "challenge" / "challenge.csv", challenge, FIELDS)
    write_csv(DATA / "challenge" / "excluded.csv", dropped_ch, [*FIELDS, "near_duplicate_of", "reason"])

    for folder, rows in (("supplement", supplement), ("challenge", challenge)):
        blind = [{"id": r["id"], "text": r["text"]} for r in rows]
        random.Random(SEED + 1).shuffle(blind)
        write_csv(DATA / folder / "blind.csv", blind, ["id", "text"])
        print(f"{folder}: kept {len(rows)}")
    print(f"dropped: supplement {len(dropped)}, challenge {len(dropped_ch)}")


if __name__ == "__main__":
    main()
