"""A fit reports progress within an epoch and while it builds its examples, not only at each epoch's end."""

import pytest

from recommender.ml import make_model, progress
from recommender.ml.deep import DeepSequentialRecommender
from recommender.ml.ragged import Ragged

from .conftest import N_ITEMS
from .test_deep_repeat import periodic_shoppers


@pytest.fixture
def every_step(monkeypatch):
    """Reports within a stage after every unit of work, and the reports received."""
    monkeypatch.setattr(progress, "PROGRESS_SECONDS", 0.0)
    reports = []

    def record(epoch, metrics, elapsed, eta, **step):
        reports.append({"epoch": epoch, "metrics": metrics, "elapsed": elapsed, **step})

    return reports, record


def test_the_sequential_fit_reports_every_batch_of_each_epoch(split, every_step):
    reports, record = every_step
    train = Ragged.from_lists(split.train)
    model = DeepSequentialRecommender(embed_dim=8, n_blocks=1, batch_size=32, max_epochs=2, max_seconds=None,
                                      verbose=False)  # fmt: skip
    model.fit(train, n_items=N_ITEMS, progress_callback=record)
    n_batches = -(-int((train.lengths > 1).sum()) // 32)
    assert n_batches > 1
    for epoch in (1, 2):
        within = [r for r in reports if r["epoch"] == epoch and r.get("stage") == "batches"]
        assert [r["done"] for r in within] == list(range(1, n_batches + 1))
        assert {r["total"] for r in within} == {n_batches}
        assert all("loss" in r["metrics"] for r in within)
    ends = [r["epoch"] for r in reports if "stage" not in r]
    assert ends == [1, 2]
    assert all(a["elapsed"] <= b["elapsed"] for a, b in zip(reports, reports[1:]))


def test_the_basket_fit_reports_while_building_examples_and_within_epochs(every_step):
    reports, record = every_step
    histories, stamps, orders = periodic_shoppers(n_customers=30)
    model = make_model("deep", seed=0, verbose=False, basket_epochs=2, n_cutoffs=3, cutoff_step_days=1,
                       n_negatives=8, examples_per_batch=16)  # fmt: skip
    model.fit(histories, timestamps=stamps, orders=orders, n_items=12, progress_callback=record)
    building = [r for r in reports if r.get("stage") == "building examples"]
    assert building and building[-1]["done"] == building[-1]["total"] == 3 * 30
    batches = [r for r in reports if r.get("stage") == "batches" and r["epoch"] == 1]
    assert len(batches) == -(-model.training_examples_ // 16) > 1


def test_within_a_stage_it_waits_for_progress_seconds(monkeypatch):
    # the clock as read: at the start, then at each step (and once more at each report)
    clock = iter([0.0, 10.0, 59.0, 61.0, 62.0, 100.0, 130.0, 131.0])
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(clock))
    calls = []
    reporter = progress.Progress(lambda *args, **step: calls.append(step["done"]), started=0.0)
    for done in range(1, 6):
        reporter.step("batches", done, 5)
    assert calls == [3, 5]  # 61 s after the start, then 68 s after that report
