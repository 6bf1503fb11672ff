"""The dashboard in a real browser: the first page after login, its charts, filters and CSV export."""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from tests.campaigns.test_dashboard import measured_campaign
from tests.conftest import ARTIFACTS
from tests.e2e.conftest import login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_analyst_reads_the_dashboard_filters_it_and_exports_the_table(page, live_server, roles):
    from tests.factories import UserFactory

    analyst = UserFactory(username="analyst")
    analyst.groups.add(roles["analyst"])
    # given two campaigns: Spring (two batches, the second one's holdout bought as much) and Autumn
    measured_campaign("Spring sale", sent=timezone.now() - timedelta(days=40))
    measured_campaign("Spring sale", sent=timezone.now() - timedelta(days=25), number=2, buyers=(20, 5))
    autumn, _ = measured_campaign("Autumn sale", sent=timezone.now() - timedelta(days=10), treated=120, holdout=40)
    # when the analyst signs in, the dashboard is the first page
    login(page, live_server, "analyst")
    expect(page).to_have_url(f"{live_server.url}/")
    expect(page.locator("#batches-table tbody tr")).to_have_count(3)
    expect(page.locator("#campaigns-table tbody tr")).to_have_count(2)
    expect(page.locator("#batches-table")).to_contain_text("+20.0 points, significant")
    expect(page.locator("#batches-table")).to_contain_text("not significant yet")
    # plotly (from the installed package) drew every chart
    for chart in ("funnel", "money", "uplift"):
        expect(page.locator(f"#chart-{chart} .main-svg").first).to_be_visible()
    expect(page.locator("#chart-global")).to_have_count(0)  # no global holdout: no empty chart for it
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    # the campaign filter leaves Autumn alone
    page.select_option("#f-campaign", label="Autumn sale")
    page.click("#f-apply")
    expect(page).to_have_url(f"{live_server.url}/?campaign={autumn.id}&from=&to=")
    expect(page.locator("#batches-table tbody tr")).to_have_count(1)
    expect(page.locator("#batches-table")).to_contain_text("Autumn sale")
    # the date filter: before Autumn was sent, only Spring remains
    page.goto(f"{live_server.url}/")
    page.fill("#f-to", (timezone.now() - timedelta(days=15)).date().isoformat())
    page.click("#f-apply")
    expect(page.locator("#campaigns-table tbody tr")).to_have_count(1)
    expect(page.locator("#campaigns-table")).to_contain_text("Spring sale")
    # the CSV export carries the same filters
    with page.expect_download() as download:
        page.click("#csv-export")
    text = open(download.value.path(), encoding="utf-8").read()
    assert text.startswith("level,campaign,batch,targeted,sent,delivered")
    assert "Spring sale" in text and "Autumn sale" not in text
    page.screenshot(path=str(ARTIFACTS / "dashboard-filtered.png"), full_page=True)
