"""Predicted against actual in a real browser: the batch page and the dashboard's "Did the model keep its
promises?", one batch whose window has closed and one still open."""

from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone
from playwright.sync_api import expect

from campaigns.models import Batch, Campaign, Recipient
from campaigns.services.stats import stats_refresh
from campaigns.services.summary import batch_summarise
from tests.campaigns.conftest import promotion
from tests.conftest import ARTIFACTS
from tests.e2e.conftest import login
from tests.factories import BatchFactory, CampaignFactory, CustomerFactory, EventFactory, ItemFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def sent_batch(campaign, offer, number, sent, skin, bought_share, seed):
    """400 treated (p1 from 0.05 to 0.45) and 100 held out (p0 = 0.8 p1) of a skin-care offer; a share of
    each group buys skin care in the window."""
    rng = np.random.default_rng(seed)
    treated, held = CustomerFactory.create_batch(400), CustomerFactory.create_batch(100)
    batch = BatchFactory(
        campaign=campaign, number=number, sent_at=sent, recipients=treated, holdout=held,
        recipients__promotion=offer, holdout__promotion=offer,
    )  # fmt: skip
    for row in batch.recipients.all():
        p1 = float(rng.uniform(0.05, 0.45))
        row.p_response, row.p_baseline = p1, 0.8 * p1
        row.expected_revenue, row.expected_discount, row.expected_margin = p1 * 4, p1 * 0.8, p1 * 1.2
        row.expected_value = p1 * 0.4 - 0.8 * p1 * 1.2
        row.save()
        if rng.random() < bought_share * (row.p_response if row.outcome == "recipient" else row.p_baseline):
            EventFactory(customer=row.customer, item=skin, value="4.00", occurred_at=sent + timedelta(days=1))
    Batch.objects.filter(id=batch.id).update(summary=batch_summarise(batch=batch))
    stats_refresh(batch_ids=[batch.id])
    return batch


def test_a_marketer_sees_whether_the_model_kept_its_promises(page, live_server, roles):
    marketer = UserFactory(username="marketer")
    marketer.groups.add(roles["marketer"])
    offer = promotion(name="20% off skin care")
    campaign = CampaignFactory(name="Skin care", measured_response=Campaign.Response.ELIGIBLE_PURCHASE,
                               promotions=[offer])  # fmt: skip
    skin = ItemFactory(category_path="Beauty > Skin care", price="4.00")
    # given batch 1, sent 30 days ago, whose buyers came as predicted, and batch 2, sent 3 days ago
    sent_batch(campaign, offer, 1, timezone.now() - timedelta(days=30), skin, 1.0, seed=1)
    open_batch = sent_batch(campaign, offer, 2, timezone.now() - timedelta(days=3), skin, 0.3, seed=2)
    login(page, live_server, "marketer")
    table = page.locator("#promises-table")
    expect(table.locator("tbody tr")).to_have_count(2)
    expect(table.locator("tbody tr").nth(0)).to_contain_text("closed")
    expect(table.locator("tbody tr").nth(1)).to_contain_text("window still open (11 days left)")
    expect(table.locator("tbody tr").nth(1)).not_to_contain_text("fewer than predicted")
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator("#promises-title").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "dashboard-promises.png"), full_page=True)
    # the open batch's page says the same
    page.goto(f"{live_server.url}/admin/campaigns/batch/{open_batch.id}/change/")
    expect(page.locator("#predicted-actual-window")).to_contain_text("window still open (11 days left)")
    expect(page.locator("#predicted-actual")).to_contain_text("recipients who bought the offered items")
    assert Recipient.objects.filter(batch=open_batch, reason="holdout", promotion=offer).count() == 100
    page.screenshot(path=str(ARTIFACTS / "batch-promises.png"), full_page=True)
