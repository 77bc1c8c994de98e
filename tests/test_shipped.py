"""The shipped models (built by `make all`, their cards and configs committed) on issue 15's held-out probes."""

import pytest

from stance import paths
from stance.experiment import PROBES

SHIPPED = ("baseline", "transformer")


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_model_reads_the_probes_as_pro_encryption(name):
    from stance.api import load

    model = load(name)
    assert model.predict(list(PROBES)) == ["pro-encryption", "pro-encryption"]


def test_the_default_model_reads_the_probes_as_pro_encryption():
    import stance

    results = stance.predict(list(PROBES))
    assert [r.label for r in results] == ["pro-encryption", "pro-encryption"]
    assert (paths.models_dir() / "DEFAULT").read_text().strip() in SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_models_record_their_training_data_and_test_figures(name):
    import json

    config = json.loads((paths.models_dir() / name / "config.json").read_text())
    assert config["training_data"]["training_set"] == "all"
    sources = config["training_data"]["sentences_by_source"]
    assert sources["contrast"] > 1400 and sources["articles"] > 2000
    assert 0.0 <= config["cv_metrics"]["contrast_test"]["pair_accuracy"] <= 1.0
    assert 0.0 <= config["cv_metrics"]["article_test"]["side_accuracy"] <= 1.0
