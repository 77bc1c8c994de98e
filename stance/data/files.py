"""CSV and JSON files of the data folder: read and write them (UTF-8, one column order)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def read_csv(path: Path) -> list[dict[str, str]]:
    """Rows of a UTF-8 CSV file as dicts. Raises ``FileNotFoundError`` naming the file."""
    if not path.exists():
        raise FileNotFoundError(f"missing data file: {path}")
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def write_csv(path: Path, rows: Iterable[dict[str, Any]], fields: Iterable[str]) -> None:
    """Write ``rows`` to ``path`` as UTF-8 CSV with the given column order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(fields), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def summary_json(summary: dict[str, Any], path: Path) -> None:
    """Write ``summary`` to ``path`` as indented UTF-8 JSON (non-ASCII kept as is)."""
    path.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
