"""The measurement's statistical test (issue 14, section 3): the 95% interval against the simulated truth."""

import pytest

from demo_shop.coverage import coverage_run, records_match, synthetic_shop
from demo_shop.transport import InProcessTransport, demo_shop_token

BATCHES = 20


@pytest.mark.django_db
def test_the_interval_covers_the_true_uplift_and_the_counts_match_the_simulator():
    # given: a synthetic shop and the demo shop's integration token
    shop = synthetic_shop(customers=2000, seed="ci-shop", batches=BATCHES)
    transport = InProcessTransport(demo_shop_token())
    # when: 20 seeded batches are simulated, posted through the events API and measured by the product
    runs = [coverage_run(shop=shop, number=n, transport=transport) for n in range(BATCHES)]
    # then
    mismatched = [run for run in runs if not records_match(run)]
    assert mismatched == []
    covered = sum(run["covered"] for run in runs)
    assert covered >= 16, [(run["true_uplift"], run["low"], run["high"]) for run in runs]
    # the simulation is not degenerate: buyers in both groups, codes used, lifts that differ
    assert all(run["treated_buyers"][0] > 0 and run["holdout_buyers"][0] > 0 for run in runs)
    assert all(run["code_conversions"][0] > 0 for run in runs)
    assert len({round(run["lift_points"], 6) for run in runs}) == BATCHES
