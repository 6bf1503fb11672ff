"""A marketer's first hour, in a real browser: the pages issue 14 changed, checked for script errors, with
screenshots in test-artifacts/ (first-hour-*.png)."""

from datetime import timedelta

import pytest
from anymail.message import AnymailMessage
from django.test import override_settings
from django.utils import timezone
from playwright.sync_api import expect

from campaigns.models import Audience, Campaign
from tests.campaigns.conftest import build_shop, promotion
from tests.campaigns.test_dashboard import measured_campaign
from tests.conftest import ARTIFACTS
from tests.e2e.conftest import login
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
RULES = {"match": "all", "rules": [{"field": "recency_days", "op": "lte", "value": 30}]}


def user(roles, name):
    person = UserFactory(username=name)
    person.groups.add(roles[name])
    return person


def watch_errors(page):
    """Script errors and failed requests of the page (but the browser's own favicon.ico), as they happen."""
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "console",
        lambda message: (
            message.type == "error"
            and not message.text.startswith("Failed to load resource")
            and errors.append(message.text)
        ),
    )
    page.on(
        "response",
        lambda response: (
            response.status >= 400
            and not response.url.endswith("/favicon.ico")
            and errors.append(f"{response.status} {response.url}")
        ),
    )
    return errors


def shot(page, name):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"first-hour-{name}.png"), full_page=True)


def test_the_first_page_says_what_to_do_next(page, live_server, roles):
    marketer = user(roles, "marketer")
    audience = Audience.objects.create(name="Recent", rules=RULES, created_by=marketer)
    campaign = Campaign.objects.create(name="Weekly picks", audience=audience, created_by=marketer)
    errors = watch_errors(page)
    login(page, live_server, "marketer")
    expect(page.locator("#next-steps")).to_contain_text("Weekly picks")
    shot(page, "next-steps")
    page.click("#next-steps a >> nth=0")
    expect(page).to_have_url(f"{live_server.url}/admin/campaigns/campaign/{campaign.pk}/change/")
    assert errors == []


def test_one_day_and_one_batch_read_as_days_and_percentage_points(page, live_server, roles):
    user(roles, "analyst")
    measured_campaign(sent=timezone.now().replace(hour=9) - timedelta(days=20))
    errors = watch_errors(page)
    login(page, live_server, "analyst")
    expect(page.locator("#chart-funnel .main-svg").first).to_be_visible()
    ticks = page.locator("#chart-funnel .xtick text").all_text_contents()
    assert ticks and all(len(tick) == 10 and tick[4] == "-" for tick in ticks), ticks  # "2026-11-12", no hours
    expect(page.locator("#batches-table .uplift-estimate")).to_have_text("+20.0 pts")
    expect(page.locator("#chart-global")).to_have_count(0)
    shot(page, "dashboard-one-day")
    assert errors == []


def test_the_promotion_pickers_suggest_and_count(page, live_server, roles):
    user(roles, "marketer")
    build_shop(6)
    errors = watch_errors(page)
    login(page, live_server, "marketer")
    page.goto(f"{live_server.url}/admin/campaigns/promotion/add/")
    expect(page.locator("#items-match-count")).to_have_text("24")
    page.fill("#pick-categories", "Beau")
    expect(page.locator("#options-categories option")).to_have_count(3)
    page.fill("#pick-categories", "Beauty > Hair")  # what choosing a suggestion does
    expect(page.locator("#id_categories")).to_have_value("Beauty > Hair")
    expect(page.locator("#items-match")).to_contain_text("8 items match")
    shot(page, "promotion-pickers")
    assert errors == []


def test_the_template_editor_previews_beside_the_textarea(page, live_server, roles):
    marketer = user(roles, "marketer")
    build_shop(6)
    offer = promotion(name="Skin days", shared_code="SKIN15")
    audience = Audience.objects.create(name="Recent", rules=RULES, created_by=marketer)
    campaign = Campaign.objects.create(name="Weekly picks", audience=audience, created_by=marketer)
    campaign.promotions.add(offer)
    errors = watch_errors(page)
    login(page, live_server, "marketer")
    page.goto(f"{live_server.url}/admin/campaigns/campaign/{campaign.pk}/change/")
    expect(page.locator("#preview-customer")).to_contain_text("Customer")
    page.fill("#id_subject_template", "{{ customer.first_name }}: {{ promotion.code }} & more")
    expect(page.locator("#preview-subject")).to_have_text("Customer: SKIN15 & more")
    page.fill("#id_body_template", "<p>{{ customer.nme }}</p>")
    expect(page.locator("#preview-error")).to_contain_text("Unknown field(s): customer.nme")
    page.fill("#id_body_template", "<p>Hello {{ customer.first_name }} &amp; welcome</p>")
    expect(page.locator("#preview-text")).to_have_text("Hello Customer & welcome")
    shot(page, "template-preview")
    assert [e for e in errors if not e.startswith("400 ") or "/preview/" not in e] == []  # the 400: the nme


def test_an_analyst_reads_without_script_errors_and_a_refusal_says_why(page, live_server, roles):
    marketer, _ = user(roles, "marketer"), user(roles, "analyst")
    audience = Audience.objects.create(name="Recent", rules=RULES, created_by=marketer)
    campaign = Campaign.objects.create(name="Weekly picks", audience=audience, created_by=marketer)
    errors = watch_errors(page)
    login(page, live_server, "analyst")
    page.goto(f"{live_server.url}/admin/campaigns/audience/{audience.pk}/change/")
    expect(page.locator("#rule-builder .rule-value")).to_have_value("30")
    expect(page.locator("#rule-builder .rule-value")).to_be_disabled()
    shot(page, "analyst-audience")
    page.goto(f"{live_server.url}/admin/campaigns/campaign/{campaign.pk}/change/")
    expect(page.locator("#content")).to_contain_text("Weekly picks")
    assert errors == []
    page.goto(f"{live_server.url}/admin/campaigns/campaign/add/")
    expect(page.locator("#refused-who")).to_contain_text("analyst")
    shot(page, "refused")


def test_the_fake_postmarks_outbox_is_a_page(page, fake_postmark):
    fake_postmark.reset()
    anymail = {"POSTMARK_SERVER_TOKEN": fake_postmark.token, "POSTMARK_API_URL": fake_postmark.url}
    with override_settings(EMAIL_BACKEND="anymail.backends.postmark.EmailBackend", ANYMAIL=anymail):
        for name in ("ann", "bob"):
            email = AnymailMessage(f"Picks for {name}", "Hi", "shop@example.test", [f"{name}@example.test"])
            email.attach_alternative(f"<h1>Hello {name}</h1><p><a href='https://x.test/'>an item</a></p>", "text/html")
            email.send()
    page.goto(fake_postmark.url + "_fake/?q=bob")
    expect(page.locator("#outbox-rows tr")).to_have_count(1)
    page.click("#outbox-rows a")
    expect(page.frame_locator("#message-html").locator("h1")).to_have_text("Hello bob")
    shot(page, "outbox-message")
