from datetime import timedelta

import pytest
from django.utils import timezone

from demo_shop.coverage import coverage_run, synthetic_shop
from demo_shop.models import SimulatedBatch
from demo_shop.templatetags.demo_shop import simulated_truth_rows
from demo_shop.transport import InProcessTransport, demo_shop_token
from tests.factories import BatchFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def measured():
    """A simulated batch whose window ended, measured by the product."""
    shop = synthetic_shop(customers=300, seed="truth", batches=1)
    return coverage_run(shop=shop, number=0, transport=InProcessTransport(demo_shop_token()))


def test_the_truth_of_an_ended_window_stands_beside_the_measurement(measured):
    [row], still_open = simulated_truth_rows()
    assert still_open == 0
    assert row.true_points == pytest.approx(measured["true_uplift"] * 100)
    assert row.measured_points == pytest.approx(
        (measured["measured"] * 100, measured["low"] * 100, measured["high"] * 100)
    )
    assert row.covered == measured["covered"]


def test_the_truth_of_an_open_window_is_not_shown(client, analyst, measured):
    # given: another batch still in its window
    batch = BatchFactory(sent_at=timezone.now() - timedelta(minutes=1))
    SimulatedBatch.objects.create(batch=batch, seed="open", window_start=batch.sent_at,
                                  window_end=timezone.now() + timedelta(minutes=13), true_uplift=0.5)  # fmt: skip
    # when
    client.force_login(analyst)
    page = " ".join(client.get("/").content.decode().split())
    # then: one row (the ended window), and a word about the other
    assert page.count('class="truth-row"') == 1
    assert f"{measured['true_uplift'] * 100:+.1f} pts" in page
    assert "1 batch still in its window" in page
    assert "50.00" not in page
