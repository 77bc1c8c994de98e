"""The seed sentence table: every sentence of ``seeds/*.txt`` with a stable id, offsets and its
near-duplicate group (``data/sentences.csv``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from stance import paths
from stance.data.files import write_csv
from stance.data.similarity import group_ids
from stance.segment import segment


@dataclass(frozen=True)
class SentenceRow:
    """One seed sentence: a stable id (document stem + index), offsets and its near-duplicate group."""

    id: str
    doc: str
    index: int
    start: int
    end: int
    text: str
    group: str


def sentence_id(doc: str, index: int) -> str:
    """The stable id of a seed sentence: document stem and 3-digit index (``000_x-007``)."""
    return f"{doc}-{index:03d}"


def build_sentence_table(seeds: Path | None = None) -> list[SentenceRow]:
    """Segment every ``*.txt`` in ``seeds`` (default: the project's) into :class:`SentenceRow`.

    Raises ``FileNotFoundError`` if the folder holds no ``.txt`` file.
    """
    folder = Path(seeds) if seeds is not None else paths.seeds_dir()
    files = sorted(folder.glob("*.txt"))
    if not files:
        raise FileNotFoundError(f"no seed .txt files in {folder}")
    pieces: list[tuple[str, int, Any]] = []
    for file in files:
        for index, sentence in enumerate(segment(file.read_text(encoding="utf-8"))):
            pieces.append((file.stem, index, sentence))
    groups = group_ids([s.text for _, _, s in pieces])
    return [
        SentenceRow(sentence_id(doc, i), doc, i, s.start, s.end, s.text, f"g{group:03d}")
        for (doc, i, s), group in zip(pieces, groups)
    ]


def write_sentence_table(rows: list[SentenceRow], path: Path) -> None:
    """Write the sentence table to ``path`` as CSV, one column per :class:`SentenceRow` field."""
    write_csv(path, (asdict(r) for r in rows), SentenceRow.__dataclass_fields__)
