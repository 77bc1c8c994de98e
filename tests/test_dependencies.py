"""The package's declared dependencies are exactly what it imports (deptry, configured in pyproject.toml).

deptry compares the imports in ``stance/`` with ``[project.dependencies]`` and the extras: an
import nothing declares, a declared package nothing imports, or an import that only arrives
through another package's dependencies is an issue. Tests, experiments and benchmarks are not
checked (they are not shipped).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _deptry(folder: Path, target: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "deptry", target, "--no-ansi"], cwd=folder, capture_output=True,
                          text=True, timeout=300)
    assert "No module named deptry" not in done.stderr, "deptry is missing: pip install -e '.[dev]'"
    return done


def test_stance_declares_exactly_what_it_imports():
    done = _deptry(ROOT, "stance")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No dependency issues found" in done.stdout + done.stderr


def test_the_check_reports_an_undeclared_and_an_unused_dependency(tmp_path):
    # the same check on a tiny project that imports what it does not declare and declares what it
    # does not import: it must fail, naming both
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "tiny"\nversion = "0"\ndependencies = ["numpy", "pandas"]\n'
    )
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "__init__.py").write_text("import numpy\nimport scipy\n")
    done = _deptry(tmp_path, "tiny")
    report = done.stdout + done.stderr
    assert done.returncode != 0
    assert "'scipy'" in report and "'pandas'" in report
