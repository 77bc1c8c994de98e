"""The package works when installed from its wheel outside the checkout (issue 16).

Builds the wheel, installs it (without dependencies: they are this environment's) into a fresh
folder, and from another working directory, with an empty model store and cache, runs
``import stance; stance.predict(...)``, ``stance predict`` and ``stance score`` on a folder with
the default model that the wheel carries.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict[str, object]:
    work = tmp_path_factory.mktemp("wheel")
    dist = work / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(dist)], check=True, cwd=work, capture_output=True)
    (wheel,) = dist.glob("stance-*.whl")
    target = work / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    elsewhere = work / "elsewhere"
    (elsewhere / "articles").mkdir(parents=True)
    (elsewhere / "articles" / "one.txt").write_text("Encryption protects everyone.\nThe vote is on Tuesday.\n",
                                                    encoding="utf-8")
    (elsewhere / "articles" / "two.md").write_text("Scanning every message is mass surveillance.\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STANCE_", "PYTHONPATH"))}
    env.update(PYTHONPATH=str(target), STANCE_HOME=str(work / "empty-store"), STANCE_CACHE_DIR=str(work / "cache"))
    return {"wheel": wheel, "target": target, "cwd": elsewhere, "env": env}


def run(installed: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=installed["cwd"], env=installed["env"], capture_output=True,
                          text=True, timeout=300)


def test_the_wheel_carries_the_default_model_and_no_checkout_files(installed):
    names = zipfile.ZipFile(installed["wheel"]).namelist()
    assert "stance/packaged/DEFAULT" in names and "stance/packaged/baseline/config.json" in names
    assert "stance/models/backend_choice.json" in names  # the measured default inference backend
    assert not [n for n in names if n.startswith(("data/", "seeds/", "tests/", "experiments/"))]


def test_import_and_predict_from_the_installed_copy(installed):
    code = ("import stance, json; from stance.models.backends import shipped_default; "
            "p = stance.predict('Encryption protects everyone.'); "
            "print(json.dumps({'file': stance.__file__, 'label': p.label, 'model': p.model, "
            "'backend': shipped_default('mpnet')}))")
    result = run(installed, "-c", code)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["file"].startswith(str(installed["target"]))
    assert out["label"] == "pro-encryption" and out["model"] == "baseline"
    from stance.models.backends import shipped_default

    assert out["backend"] == shipped_default("mpnet")  # read from the installed package data


def test_cli_predict_and_score_from_another_folder(installed):
    predicted = run(installed, "-m", "stance", "predict", "--json", "Scanning every message is mass surveillance.")
    assert predicted.returncode == 0, predicted.stderr
    assert json.loads(predicted.stdout.splitlines()[0])["label"] in {"pro-encryption", "pro-scanning", "neutral"}
    scored = run(installed, "-m", "stance", "score", "articles", "--out", "out")
    assert scored.returncode == 0, scored.stderr
    rows = [json.loads(line) for line in (installed["cwd"] / "out" / "articles.jsonl").read_text().splitlines()]
    assert [(r["doc_id"], r["error"], r["model"]) for r in rows] == [("one.txt", None, "baseline"),
                                                                    ("two.md", None, "baseline")]
    listed = run(installed, "-m", "stance", "models")
    assert listed.returncode == 0 and "* baseline" in listed.stdout and "packaged" in listed.stdout
    missing = run(installed, "-m", "stance", "predict", "--model", "transformer", "text")
    assert missing.returncode == 2 and missing.stderr.startswith("error: model 'transformer'")
    assert "Traceback" not in missing.stderr
