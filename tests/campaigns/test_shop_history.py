"""The shop's own past campaigns on the dashboard: targeted households, redemptions, targeted vs untargeted."""

from datetime import UTC, date, datetime

import pytest

from campaigns.dashboard.shop_history import shop_history_rows
from shop.models import ExternalCampaign, ExternalCoupon
from tests.factories import CustomerFactory, EventFactory

pytestmark = pytest.mark.django_db


def at(day, hour=12):
    return datetime(2017, 3, day, hour, tzinfo=UTC)


@pytest.fixture
def history():
    """Six households; campaign 8 (March 5 to 10) targets h1-h3. In its window h1 and h2 buy (10 + 20, 30),
    h4 buys (40); h5 bought only before it, h6 only after. Two redemptions name campaign 8, one another."""
    h = {n: CustomerFactory(external_id=f"h{n}") for n in range(1, 7)}
    campaign = ExternalCampaign.objects.create(
        source="completejourney", external_id="8", campaign_type="Type A",
        start_date=date(2017, 3, 5), end_date=date(2017, 3, 10),
    )  # fmt: skip
    campaign.targeted.add(h[1], h[2], h[3])
    ExternalCoupon.objects.create(campaign=campaign, code="51800000050")
    ExternalCoupon.objects.create(campaign=campaign, code="51800000051")
    for customer, day, value in [(h[1], 5, "10"), (h[1], 10, "20"), (h[2], 7, "30"), (h[4], 6, "40"),
                                 (h[5], 4, "50"), (h[6], 11, "60")]:  # fmt: skip
        EventFactory(customer=customer, occurred_at=at(day, 23), value=value, source="completejourney")
    for customer, campaign_id in [(h[1], 8), (h[2], 8), (h[4], 9)]:
        attributes = {"coupon_upc": "51800000050", "campaign_id": campaign_id}
        EventFactory(customer=customer, item=None, type="coupon_redemption", value=None, occurred_at=at(8),
                     source="completejourney", attributes=attributes)  # fmt: skip
    return campaign


def test_it_compares_targeted_and_untargeted_households_in_the_campaign_window(history):
    # when
    [row] = shop_history_rows()
    # then
    assert (row.campaign, row.coupons, row.redemptions) == (history, 2, 2)
    assert (row.targeted.households, row.targeted.buyers, row.targeted.spend) == (3, 2, 60.0)
    assert (row.untargeted.households, row.untargeted.buyers, row.untargeted.spend) == (3, 1, 40.0)
    assert row.share_difference == pytest.approx((2 / 3 - 1 / 3) * 100)
    assert row.spend_difference == pytest.approx(20 - 40 / 3)


def test_the_dashboard_shows_it_labelled_observational(client, analyst, history):
    client.force_login(analyst)
    page = " ".join(client.get("/").content.decode().split())
    assert 'id="shop-history-table"' in page
    assert "Observational, not randomised" in page
    assert "66.7% / 33.3%" in page and "20.00 / 13.33" in page


def test_the_dashboard_shows_no_history_section_without_one(client, analyst):
    client.force_login(analyst)
    assert 'id="shop-history"' not in client.get("/").content.decode()
