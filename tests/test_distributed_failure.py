"""A failure injected into the scoring kernel gives the same error row from every path (issue 16).

Its own Ray session: the failure is installed in every Ray worker by a job-level
``worker_process_setup_hook``, which only ``ray.init`` accepts.
"""

from __future__ import annotations

import sys

import pytest

pytestmark = pytest.mark.ray
ray = pytest.importorskip("ray")

MARK = "INJECTED"
REASON = "segmentation failed: RuntimeError: injected failure"


def install_failure() -> None:
    """Make the kernel's segmentation fail on any article holding ``MARK`` (this process)."""
    from stance.scoring import kernel

    real = kernel.segment_with_context

    def failing(text: str):
        if MARK in text:
            raise RuntimeError("injected failure")
        return real(text)

    kernel.segment_with_context = failing


@pytest.fixture(scope="module")
def ray_with_failure():
    from ray import cloudpickle  # Ray pickles the hook with its own copy of cloudpickle

    # the hook travels by value: the workers cannot import this test module
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"worker_process_setup_hook": install_failure})
    yield
    ray.shutdown()
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def test_same_error_row_from_score_article_local_and_ray(ray_with_failure, tmp_path, tiny_baseline, monkeypatch):
    import json

    from stance.api import ArticleError, score_article
    from stance.scoring import distributed, kernel, local

    good = tmp_path / "a.txt"
    good.write_text("Encryption protects everyone.\nThe vote is on Tuesday.", encoding="utf-8")
    bad = tmp_path / "b.txt"
    bad.write_text(f"Scanning is needed. {MARK} here.", encoding="utf-8")
    counts = distributed.score_files([good, bad], tmp_path / "ray", model=tiny_baseline)
    ray_rows = [json.loads(line) for line in (tmp_path / "ray" / "articles.jsonl").read_text().splitlines()]

    real = kernel.segment_with_context
    install_failure()  # now in this process too
    try:
        with pytest.raises(ArticleError) as raised:
            score_article(bad.read_text(encoding="utf-8"), model=tiny_baseline)
        local.score_files([good, bad], tmp_path / "local", model=tiny_baseline)
    finally:
        monkeypatch.setattr(kernel, "segment_with_context", real)
    local_rows = [json.loads(line) for line in (tmp_path / "local" / "articles.jsonl").read_text().splitlines()]
    assert counts == {"articles": 2, "sentences": 2, "errors": 1}
    assert str(raised.value) == REASON
    assert [r["error"] for r in ray_rows] == [r["error"] for r in local_rows] == [None, REASON]
    assert ray_rows == local_rows
