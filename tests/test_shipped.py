"""The shipped models (built by `make all`, their cards and configs committed) on issue 15's held-out probes.

"Encryption keeps children safe from hackers." must come out pro-encryption from every shipped model.
"Encryption protects children." does not yet, from any model the grid evaluated (every one reads the
three words as pro-scanning or neutral: `children` and `protects children` weigh towards scanning, and
no training sentence may be near the probe): that case is a strict expected failure, so it turns red
the day a model gets it right and the marker has to go.
"""

import json

import pytest

from stance import paths
from stance.evaluation.protocol import PROBES

SHIPPED = ("baseline", "transformer")
KNOWN_FAILURE = pytest.mark.xfail(strict=True, reason="issue 15 probe still read as pro-scanning/neutral; see the note")
CASES = [pytest.param(PROBES[0], marks=KNOWN_FAILURE), PROBES[1]]


@pytest.mark.parametrize("probe", CASES)
@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_model_reads_the_probes_as_pro_encryption(name, probe):
    from stance.api import load

    assert load(name).predict([probe]) == ["pro-encryption"]


@pytest.mark.parametrize("probe", CASES)
def test_the_default_model_reads_the_probes_as_pro_encryption(probe):
    import stance

    assert stance.predict(probe).label == "pro-encryption"


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_models_record_their_training_data_and_test_figures(name):
    config = json.loads((paths.models_dir() / name / "config.json").read_text())
    assert config["training_data"]["training_set"] == "all"
    sources = config["training_data"]["sentences_by_source"]
    assert sources["contrast"] >= 1500 and sources["articles"] > 1500
    assert config["training_data"]["left_out_near_probes"] >= 1
    assert 0.0 <= config["cv_metrics"]["contrast_test"]["pair_accuracy"] <= 1.0
    assert 0.0 <= config["cv_metrics"]["article_test"]["side_accuracy"] <= 1.0
    assert (paths.models_dir() / "DEFAULT").read_text().strip() in SHIPPED
