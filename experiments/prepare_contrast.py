"""Turn the writers' contrast files into the contrast sets and their blind files.

* ``contrast``: merges ``data/contrast/parts/*.csv`` (training contrast groups), assigns ids ``con0001``...;
* ``contrast_test``: ``data/contrast_test/contrast_test_written.csv`` (the independent test set), ids ``ct0001``...;
* ``agreement <pass2 part>``: Cohen's kappa of an appended part's blind pass, after its adjudication;
* ``append <part> <blind file>``: a later writer's part joins the training contrast groups (ids continue);
  its groups near a held-out sentence (:func:`check_leakage.held_out_texts`, the probes included) are
  dropped whole at once, into ``data/contrast/excluded.csv``.

Each gets ``written_label`` (the writer's label: pass 1) and a shuffled ``blind.csv`` (id, text; labels
hidden) for the blind second pass. For the first parts, leakage control ran later, once, in
``experiments/check_leakage.py``, which drops whole groups. Refuses to overwrite a set once it exists: after adjudication it holds final labels.
"""

import random
import sys
from pathlib import Path

from check_leakage import drop_groups, held_out_texts

from stance.data.files import read_csv, write_csv
from stance.evaluation.specs import SEED

DATA = Path(__file__).resolve().parents[1] / "data"
FIELDS = ["id", "group", "text", "label", "written_label", "family", "construction", "register", "speaker_kind", "note"]


def _numbered(rows: list[dict[str, str]], prefix: str, start: int) -> list[dict[str, str]]:
    """Rows with ids ``<prefix><n>`` from ``start``, the writer's label kept as pass 1, whitespace collapsed."""
    return [{**r, "id": f"{prefix}{k:04d}", "written_label": r["label"], "text": " ".join(r["text"].split())}
            for k, r in enumerate(rows, start)]


def _write_blind(rows: list[dict[str, str]], path: Path, seed: int) -> None:
    """The rows' ids and texts, shuffled, labels hidden: the file the blind second pass labels."""
    blind = [{"id": r["id"], "text": r["text"]} for r in rows]
    random.Random(seed).shuffle(blind)
    write_csv(path, blind, ["id", "text"])


def prepare(name: str, rows: list[dict[str, str]], prefix: str) -> None:
    target = DATA / name / f"{name}.csv"
    if target.exists() and "--force" not in sys.argv:
        sys.exit(f"{target} exists; it holds adjudicated labels. Use --force to rebuild it.")
    out = _numbered(rows, prefix, 1)
    write_csv(target, out, FIELDS)
    _write_blind(out, DATA / name / "blind.csv", SEED + 2)
    print(f"{name}: {len(out)} sentences in {len({r['group'] for r in out})} groups")


def _rows_of(*paths: Path) -> list[dict[str, str]]:
    """The rows of every file of ``paths`` that exists, in order."""
    return [row for path in paths if path.exists() for row in read_csv(path)]


def _held_back(name: str, file: str = "") -> Path:
    """``data/<name>/held_back/<file>``; without ``file``, the held-back rows ``<name>_held_back.csv``."""
    return DATA / name / "held_back" / (file or f"{name}_held_back.csv")


def append(name: str, rows: list[dict[str, str]], prefix: str, blind_name: str) -> None:
    """Add a later writer's rows after the adjudicated ones, with ids that continue the set's, and
    a blind file of the new rows only."""
    target = DATA / name / f"{name}.csv"
    existing = read_csv(target)
    known = {r["group"] for r in existing + _rows_of(_held_back(name))}
    if any(r["group"] in known for r in rows):
        sys.exit(f"{name}: the new rows reuse a group id of the set; were they appended already?")
    # ids continue after the highest ever given, the excluded and held-back rows' included (dropped
    # groups leave gaps)
    others = _rows_of(DATA / name / "excluded.csv", _held_back(name), _held_back(name, "excluded.csv"))
    given = [r["id"] for r in existing + others]
    out = _numbered(rows, prefix, max(int(i[len(prefix):]) for i in given) + 1)
    write_csv(target, existing + out, FIELDS)
    # the set is frozen-tested already: the new part alone is checked against every held-out sentence
    dropped = drop_groups(name, out, held_out_texts(), "test sentence or probe")
    out = [r for r in out if r["group"] not in dropped]
    _write_blind(out, DATA / name / blind_name, SEED + 3)
    print(f"{name}: appended {len(out)} sentences in {len({r['group'] for r in out})} groups")


def part_agreement(name: str, pass2_name: str) -> None:
    """Print Cohen's kappa of one appended part: the writer's labels against its blind pass
    (``pass2_name`` under ``data/<name>/``, rows ``id,label,note``), and every disagreement still
    without an adjudication. Parts kept out of training (``held_back/``) are found there."""
    from stance.data.agreement import compare_passes

    folder = DATA / name
    rows = {r["id"]: r for r in _rows_of(folder / f"{name}.csv", _held_back(name))}
    second = {r["id"]: r["label"] for r in read_csv(folder / pass2_name) if r["id"] in rows}
    adjudication = _rows_of(folder / "adjudication.csv", _held_back(name, "adjudication.csv"))
    decided = {r["id"] for r in adjudication}
    open_items = [i for i in sorted(second) if second[i] != rows[i]["written_label"] and i not in decided]
    for item in open_items:
        print(f"to adjudicate: {item} writer {rows[item]['written_label']} / blind {second[item]}: {rows[item]['text']}")
    if open_items:
        where = folder / Path(pass2_name).parent / "adjudication.csv"  # held-back parts keep theirs beside them
        sys.exit(f"{len(open_items)} disagreements need an adjudication in {where}")
    agreement = compare_passes(f"{name} {pass2_name}", {i: rows[i]["written_label"] for i in second}, second,
                               adjudication, {i: rows[i]["label"] for i in second})
    print(agreement.as_dict())


if __name__ == "__main__":
    which = sys.argv[1]
    if which == "contrast_test":
        prepare("contrast_test", read_csv(DATA / "contrast_test" / "contrast_test_written.csv"), "ct")
    elif which == "contrast":
        parts = [row for path in sorted((DATA / "contrast" / "parts").glob("*.csv")) for row in read_csv(path)]
        prepare("contrast", parts, "con")
    elif which == "append":  # a later writer's part: prepare_contrast.py append writer_E.csv blind_part4.csv
        append("contrast", read_csv(DATA / "contrast" / "parts" / sys.argv[2]), "con", sys.argv[3])
    elif which == "agreement":  # a part's blind pass: prepare_contrast.py agreement held_back/pass2_part5.csv
        part_agreement("contrast", sys.argv[2])
    else:
        sys.exit("usage: prepare_contrast.py contrast|contrast_test [--force] | append <part.csv> <blind.csv>"
                 " | agreement <pass2 part.csv>")
