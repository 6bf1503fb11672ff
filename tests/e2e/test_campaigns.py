"""A marketer takes a campaign from nothing to an approved batch in a real browser, with a real Celery worker."""

import pytest
from playwright.sync_api import expect

from campaigns.models import Batch, Campaign, Promotion, Recipient
from recommender.models import ModelVersion
from recommender.services import modelversion_activate, modelversion_train
from shop.models import Customer
from tests.campaigns.conftest import build_shop
from tests.conftest import ARTIFACTS
from tests.e2e.conftest import login
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]
CONTACTABLE_IN_SHOP = 1000 - 4  # build_shop makes c00..c03 unreachable


@pytest.fixture
def trained_shop(celery_worker, settings, roles):
    settings.MEDIA_ROOT = celery_worker.media_root  # the worker loads the model from where this process saved it
    build_shop(1000)
    admin = UserFactory(username="admin", is_superuser=True)
    version = modelversion_train(version_id=ModelVersion.objects.create(algorithm="transitions").id)
    modelversion_activate(version=version, by=admin)
    return version


def shot(page, name):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"campaigns-{name}.png"), full_page=True)


def build_promotion(page, url):
    page.goto(f"{url}/admin/campaigns/promotion/add/")
    page.fill("#id_name", "10% off skin care")
    page.select_option("#id_kind", "percent_off")
    page.fill("#id_value", "10")
    page.fill("#id_categories", "Beauty > Skin care")
    page.fill("#id_ends_at_0", "2099-12-31")
    page.fill("#id_ends_at_1", "23:59:00")
    page.select_option("#id_code_mode", "pool")
    page.click("input[name=_continue]")
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")
    expect(page.locator(".promo-unusable")).to_contain_text("code pool is empty")
    page.fill("#codes-generate input[name=count]", "2000")
    page.fill("#codes-generate input[name=prefix]", "SKIN-")
    page.click("#codes-generate button")
    expect(page.locator(".messagelist")).to_contain_text("2,000 codes added")
    expect(page.locator(".promo-usable")).to_be_visible()


def build_audience(page, url):
    page.goto(f"{url}/admin/campaigns/audience/add/")
    page.fill("#id_name", "Bought this year")
    expect(page.locator("#count-contactable")).to_have_text(f"{CONTACTABLE_IN_SHOP:,}")  # no rule: everyone
    page.click(".add-rule")
    page.locator(".rule-field").last.select_option("frequency")
    page.locator(".rule-op").last.select_option("gte")
    page.locator(".rule-value").last.fill("3")
    page.locator(".rule-days").last.fill("365")
    expect(page.locator("#count-total")).to_have_text("1,000")  # everyone bought six times
    page.locator(".rule-value").last.fill("7")
    expect(page.locator("#count-total")).to_have_text("0")  # nobody bought seven times: the count follows
    page.locator(".rule-value").last.fill("3")
    expect(page.locator("#audience-count")).to_contain_text("2 without consent, 1 unsubscribed, 1 suppressed")
    shot(page, "audience-builder")
    page.click("input[name=_save]")
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")


def build_campaign(page, url):
    page.goto(f"{url}/admin/campaigns/campaign/add/")
    page.fill("#id_name", "Spring skin care")
    page.select_option("#id_audience", label="Bought this year")
    page.select_option("#id_promotions_from", label="10% off skin care")
    page.click("#id_promotions_add")
    page.fill("#id_holdout_percent", "20")
    page.click("input[name=_continue]")
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")


def test_from_promotion_to_approved_batch(page, browser, live_server, trained_shop, marketer, approver, roles):
    url = live_server.url
    marketer.groups.add(roles["approver"])  # may approve others' batches, never their own
    login(page, live_server, "marketer")
    build_promotion(page, url)
    build_audience(page, url)
    build_campaign(page, url)

    # the marketer generates a batch; the page follows the worker's progress and then shows the review
    page.click("#generate-batch")
    expect(page.locator("#batch-status")).to_have_text("In review", timeout=120_000)
    expect(page.locator("#n-total")).to_have_text("1,000")
    shot(page, "batch-review")
    batch = Batch.objects.get()
    assert batch.status == "generated" and batch.model_version == trained_shop

    # the batch: every customer is a recipient with one promotion, a unique code and eligible in-stock items,
    # or excluded with the right reason
    rows = list(batch.recipients.select_related("customer"))
    assert len(rows) == Customer.objects.count() == 1000
    promotion = Promotion.objects.get(name="10% off skin care")
    eligible = set(promotion.eligible_items().filter(in_stock=True, active=True).values_list("id", flat=True))
    recipients = [r for r in rows if r.outcome == Recipient.Outcome.RECIPIENT]
    assert all(r.promotion_id == promotion.id and r.code.startswith("SKIN-") for r in recipients)
    assert len({r.code for r in recipients}) == len(recipients)
    assert all(r.items and {i["item_id"] for i in r.items} <= eligible for r in recipients)
    for r in rows:
        customer = r.customer
        if not customer.marketing_consent:
            assert r.reason == "no_consent"
        elif customer.unsubscribed_at:
            assert r.reason == "unsubscribed"
        elif customer.suppressed:
            assert r.reason == "suppressed"
        else:
            assert r.outcome == "recipient" or r.reason in ("holdout", "frequency_cap", "no_eligible_item")
    holdout = sum(r.reason == "holdout" for r in rows)
    assert abs(holdout / (holdout + len(recipients)) - 0.20) < 0.05

    # the recipients list: searchable, each with its preview and the items explained
    page.click("#all-recipients")
    page.fill("#searchbar", recipients[0].customer.external_id)
    page.press("#searchbar", "Enter")
    page.locator("#result_list tbody th a").first.click()
    expect(page.locator("#preview-subject")).not_to_be_empty()
    expect(page.locator("#item-explanations")).to_be_visible()
    shot(page, "recipient-preview")

    # the creator cannot approve their own batch, though they hold the approve permission
    page.goto(f"{url}/admin/campaigns/batch/{batch.pk}/change/")
    expect(page.locator("#approval-blockers")).to_contain_text("Four eyes")
    expect(page.locator("#approve")).to_be_disabled()

    # another approver approves it, with a comment
    other = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    login(other, live_server, "approver")
    other.goto(f"{url}/admin/campaigns/batch/{batch.pk}/change/")
    other.fill("#id_comment", "Offer and audience checked.")
    other.click("#approve")
    expect(other.locator("#batch-status")).to_have_text("Approved")
    expect(other.locator("#audit-log")).to_contain_text("Offer and audience checked.")
    shot(other, "batch-approved")

    # a campaign edit voids the approval, and the audit log says who did it
    page.goto(f"{url}/admin/campaigns/campaign/{Campaign.objects.get().pk}/change/")
    page.fill("#id_subject_template", "Last call: {{ promotion.discount_text }}")
    page.click("input[name=_continue]")
    page.goto(f"{url}/admin/campaigns/batch/{batch.pk}/change/")
    expect(page.locator("#batch-status")).to_have_text("Approval voided")
    expect(page.locator("#audit-log .audit-voided")).to_contain_text("marketer")
    other.context.close()


def test_an_analyst_reads_but_changes_nothing(page, live_server, trained_shop, roles):
    analyst = UserFactory(username="analyst")
    analyst.groups.add(roles["analyst"])
    login(page, live_server, "analyst")
    page.goto(f"{live_server.url}/admin/campaigns/campaign/")
    expect(page.locator("text=Add campaign")).to_have_count(0)
    response = page.goto(f"{live_server.url}/admin/campaigns/promotion/add/")
    assert response.status == 403
    expect(page.locator("#refused-who")).to_contain_text("analyst")  # the styled page that says why
