"""The dashboard: the first page after login, read from the aggregates, with filters and a CSV export."""

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from campaigns.models import Campaign
from campaigns.services.stats import stats_refresh
from tests.factories import BatchFactory, CampaignFactory, EventFactory, UserFactory

pytestmark = pytest.mark.django_db


def measured_campaign(name="Spring sale", sent=None, treated=200, holdout=50, buyers=(60, 5), number=1):
    """A sent batch: `treated` recipients (all delivered, half opened, a fifth clicked), a holdout, purchases
    in the window by buyers[0] treated and buyers[1] held-out customers, all attributed by click."""
    sent = sent or timezone.now().replace(microsecond=0) - timedelta(days=20)
    user = UserFactory(username="owner")
    campaign = Campaign.objects.filter(name=name).first() or CampaignFactory(
        name=name, audience__name=f"All {name}", audience__rules={}, created_by=user
    )
    batch = BatchFactory(
        campaign=campaign, number=number, created_by=user, sent_at=sent, recipients=treated, holdout=holdout,
        events={"delivered": slice(None), "opened": slice(0, None, 2), "clicked": slice(0, None, 5),
                "not_interested": slice(1, None, 50)},
        events__occurred_at=sent + timedelta(hours=2),
        conversions=buyers[0], conversions__event__value="50.00", conversions__event__discount="5.00",
        conversions__margin=Decimal("20.00"),
    )  # fmt: skip
    for r in batch.recipients.filter(reason="holdout")[: buyers[1]]:
        EventFactory(customer=r.customer, occurred_at=sent + timedelta(days=1), value="50.00")
    stats_refresh(batch_ids=[batch.id])
    return campaign, batch


def test_the_dashboard_is_the_first_page_after_login(client, analyst):
    # the login form posts next=/ unless asked for another page
    assert 'name="next" value="/"' in client.get("/admin/login/").content.decode()
    assert 'name="next" value="/admin/shop/"' in client.get("/admin/login/?next=/admin/shop/").content.decode()
    response = client.post(
        "/admin/login/", {"username": "analyst", "password": "correct horse battery staple", "next": "/"}
    )
    assert response.status_code == 302 and response.url == "/"


def test_it_asks_for_a_login(client, outsider):
    assert client.get("/").url.startswith("/admin/login/?next=/")
    client.force_login(outsider)  # not staff
    assert client.get("/").status_code == 302


def test_it_shows_the_funnel_money_and_uplift_of_each_campaign_and_batch(client, analyst):
    # given a batch where 60 of 200 treated and 5 of 50 held-out customers bought
    campaign, batch = measured_campaign()
    client.force_login(analyst)
    # when
    response = client.get("/")
    # then the batch's funnel and money are there, and the uplift: 0.30 - 0.10 = +20 points
    assert response.status_code == 200
    rows = response.context["batch_rows"]
    assert len(rows) == 1
    row = rows[0]
    assert {k: row.totals[k] for k in ("targeted", "sent", "delivered", "opened", "clicked", "converted")} == {
        "targeted": 200, "sent": 200, "delivered": 200, "opened": 100, "clicked": 40, "converted": 60,
    }  # fmt: skip
    assert (row.totals["revenue"], row.totals["discount"]) == (Decimal("3000.00"), Decimal("300.00"))
    assert row.comparison.response.estimate == pytest.approx(0.2)
    assert row.comparison.response.verdict == "+20.0 points, significant"
    assert row.feedback_rate == pytest.approx(4 / 200)
    page = response.content.decode()
    assert "+20.0 points, significant" in page and "vendor/plotly.min.js" in page
    assert "Spring sale" in page


def test_it_sets_predicted_redemptions_against_actual_conversions(client, analyst):
    # given a batch whose review page promised 45 redemptions (90%: 36 to 54), and 60 conversions came
    campaign, batch = measured_campaign()
    batch.summary = {"expected": {"redemptions": 45.0}, "intervals": {"redemptions": [45.0, 36.0, 54.0]}}
    batch.save(update_fields=["summary"])
    client.force_login(analyst)
    response = client.get("/")
    (row,) = response.context["batch_rows"]
    assert (row.predicted, row.predicted_range, row.totals["conversions"]) == (45.0, (36.0, 54.0), 60)
    assert row.predicted_over_actual == pytest.approx(0.75)
    assert response.context["campaign_rows"][0].predicted == 45.0
    assert '45.0 <span class="ci">[36, 54]</span> / 60' in response.content.decode()


def test_the_filters_narrow_by_campaign_and_dates(client, analyst):
    spring, _ = measured_campaign("Spring sale", sent=timezone.now() - timedelta(days=40))
    autumn, _ = measured_campaign("Autumn sale", sent=timezone.now() - timedelta(days=10), treated=20, holdout=10)
    client.force_login(analyst)
    by_campaign = client.get("/", {"campaign": autumn.id}).context
    assert [r.campaign.name for r in by_campaign["batch_rows"]] == ["Autumn sale"]
    recent = (timezone.now() - timedelta(days=20)).date().isoformat()
    by_date = client.get("/", {"from": recent}).context
    assert [r.campaign.name for r in by_date["batch_rows"]] == ["Autumn sale"]
    assert client.get("/", {"to": recent, "from": "not a date"}).context["batch_rows"][0].campaign == spring


def test_the_csv_export_has_the_tables_lines_with_the_same_filters(client, analyst):
    campaign, _ = measured_campaign()
    measured_campaign("Other", treated=10, holdout=5)
    client.force_login(analyst)
    response = client.get("/dashboard.csv", {"campaign": campaign.id})
    assert response["Content-Type"] == "text/csv"
    lines = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [(line["level"], line["campaign"]) for line in lines] == [
        ("campaign", "Spring sale"),
        ("batch", "Spring sale"),
    ]
    assert lines[1]["converted"] == "60" and lines[1]["response_verdict"] == "+20.0 points, significant"
    assert float(lines[1]["response_uplift"]) == pytest.approx(0.2)
    assert float(lines[1]["response_uplift_low"]) < 0.2 < float(lines[1]["response_uplift_high"])


def test_the_admin_links_to_the_dashboard(client, analyst):
    client.force_login(analyst)
    assert 'href="/"' in client.get("/admin/").content.decode()


def test_plotly_is_served_from_the_installed_package(client):
    from django.contrib.staticfiles import finders

    found = finders.find("vendor/plotly.min.js")
    assert found and found.endswith("plotly/package_data/plotly.min.js")


def test_with_nothing_sent_the_first_page_says_what_to_do_next(client, marketer, analyst):
    # given the demo's ready campaign, nothing generated yet
    campaign = CampaignFactory(name="Weekly picks", audience__rules={}, created_by=marketer)
    client.force_login(marketer)
    # when
    page = client.get("/").content.decode()
    # then it links to the campaign (to generate) and to "create a campaign"
    assert 'id="next-steps"' in page
    assert reverse("admin:campaigns_campaign_change", args=[campaign.pk]) in page and "Weekly picks" in page
    assert reverse("admin:campaigns_campaign_add") in page
    # an analyst, who cannot create one, is not sent there
    client.force_login(analyst)
    assert reverse("admin:campaigns_campaign_add") not in client.get("/").content.decode()


def test_a_batch_in_review_is_the_next_step_with_its_link(client, approver):
    batch = BatchFactory(status="generated", recipients=3, holdout=0)
    client.force_login(approver)
    page = client.get("/").content.decode()
    assert f"Batch #{batch.number} of {batch.campaign} awaits review" in page
    assert reverse("admin:campaigns_batch_change", args=[batch.pk]) in page


def test_rates_are_percentages_the_uplift_points_and_money_has_two_decimals(client, analyst):
    # given 60 of 200 treated and 5 of 50 held-out customers bought, 3,000.00 of revenue
    measured_campaign()
    client.force_login(analyst)
    page = client.get("/").content.decode()
    assert "30.0% / 10.0%" in page  # response rates
    assert '<span class="uplift-estimate">+20.0 pts</span>' in page
    assert "3,000.00" in page and "2.00%" in page  # revenue; "not interested" 4 of 200 delivered
    # and without a global holdout there is no empty chart for it
    assert 'id="chart-global"' not in page


def test_a_significant_loss_is_not_shown_in_the_colour_of_a_success(client, analyst):
    # given a batch whose holdout bought far more than its treated customers (5 of 200 against 40 of 50)
    measured_campaign(buyers=(5, 40))
    client.force_login(analyst)
    page = " ".join(client.get("/").content.decode().split())
    # then the significant drop is marked a loss, and nothing reads as a success
    assert '<span class="verdict-negative">-77.5 points, significant</span>' in page
    assert "verdict-significant" not in page.split("</style>")[1]


def test_the_daily_series_has_one_day_per_point(client, analyst):
    measured_campaign(sent=timezone.now().replace(hour=12) - timedelta(days=20))
    client.force_login(analyst)
    days = client.get("/").context["charts"]["daily"]["day"]
    assert all(len(day) == 10 and day[4] == "-" for day in days)  # "2026-11-12": days, never times
