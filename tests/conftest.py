import os
from pathlib import Path

import pytest

# libgomp's default spin-waiting made 2 torch threads ~20x slower while other processes shared the
# 2 cores; it only takes effect if set before torch is first imported. The library sets no
# environment variable (the Makefile and the CLI entry point set this one); the test run does here.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# the checkout's store (the Makefile sets the same), so that a bare `pytest` finds the trained models
os.environ.setdefault("STANCE_HOME", str(Path(__file__).resolve().parents[1] / "models"))


@pytest.fixture(scope="session")
def tiny_baseline(tmp_path_factory) -> Path:
    """A TF-IDF model trained on the seeds, saved to a temporary folder."""
    from stance.data.loaders import seed_rows
    from stance.models.tfidf import TfidfModel

    rows = seed_rows()
    model = TfidfModel(C=10.0).fit([r["text"] for r in rows], [r["label"] for r in rows])
    return model.save(tmp_path_factory.mktemp("models") / "tiny-baseline")
