"""The demo's whole loop in a real browser (issue 14): a campaign is created, generated, approved by another
user and sent; the fake Postmark reports deliveries, opens and clicks to the live site's tracking webhook; the
simulated shop buys through the events API; the dashboard shows the funnel, the conversions, the uplift
interval and, once the measurement window has closed, the simulated truth. Screenshots: test-artifacts/
demo-loop-*.png.

Everything runs as `make run` runs it in demo mode, on a small synthetic shop: a Celery worker of its own
with DEMO_MODE=1 (the session's worker, if one is running, stops taking tasks meanwhile), the session's fake
Postmark with a seeded webhook sender attached, and `manage.py simulate_shop` in a process of its own. With
DEMO_TIME_SCALE at 14 × 1440 a simulated day lasts about 4 s, so the 14-day window closes a minute after the
send. The simulator and the webhooks are seeded; the batch's holdout draw is the product's (a fresh seed per
batch), so who buys differs between runs, but every assertion is a relation the loop must keep, not a figure
of one run.
"""

import os
import re
import subprocess
import sys
import time

import pytest
from django.db.models import F
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from campaigns.models import Audience, Batch, BatchUplift, Conversion, MessageEvent, Promotion, Recipient
from demo_shop.coverage import CODE, synthetic_customers
from demo_shop.models import SimulatedBatch
from promo_site.celery import app
from promo_site.demo import POSTMARK_BACKEND
from promo_site.fake_postmark_webhooks import WebhookSender
from recommender.models import ModelVersion
from recommender.services import modelversion_activate, modelversion_train
from tests import conftest
from tests.campaigns.tracking_helpers import WEBHOOK_SECRET
from tests.conftest import ARTIFACTS, REPO, wait_for, worker_env, worker_node, worker_start, worker_stop
from tests.e2e.conftest import login
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

SCALE = 14 * 1440  # the 14-day measurement window closes in 60 s, the 7-day click window in 30 s
CUSTOMERS = 300
QUEUES = ("default", "ml", "send")
# The batches table's columns (templates/campaigns/dashboard_table.html), by name.
COLUMNS = ("campaign", "batch", "targeted", "sent", "delivered", "opened", "clicked", "converted", "redemptions",
           "revenue", "discount", "response", "uplift", "profit", "not_interested")  # fmt: skip


def shot(page, name):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"demo-loop-{name}.png"), full_page=True)


def demo_env(fake_postmark, media_root, live_server):
    """What `run_stack` gives every process in demo mode, pointed at this test's site and database."""
    return worker_env(
        fake_postmark, media_root, DEMO_MODE="1", DEMO_TIME_SCALE=str(SCALE), SITE_URL=live_server.url,
        ANYMAIL_WEBHOOK_SECRET=WEBHOOK_SECRET,
    )  # fmt: skip


@pytest.fixture
def demo_settings(settings, live_server, fake_postmark):
    """The live site (this process) in demo mode, on the fake Postmark, with the webhook secret."""
    settings.DEMO_MODE = True
    settings.DEMO_TIME_SCALE = SCALE
    settings.EMAIL_BACKEND = POSTMARK_BACKEND
    settings.ANYMAIL = {
        **settings.ANYMAIL, "POSTMARK_SERVER_TOKEN": fake_postmark.token, "POSTMARK_API_URL": fake_postmark.url,
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
    }  # fmt: skip
    settings.SITE_URL = live_server.url
    return settings


@pytest.fixture
def demo_worker(demo_settings, live_server, fake_postmark, tmp_path):
    """A worker in demo mode; the session's worker, when one runs, takes no task until it has stopped."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("worker tests need PostgreSQL (the worker is another process)")
    session = worker_node(f"{conftest.SESSION_WORKER}@")
    for queue in QUEUES if session else ():
        app.control.cancel_consumer(queue, destination=[session], reply=True)
    env = demo_env(fake_postmark, tmp_path, live_server)
    process = worker_start(env=env, name=f"demo-{os.getpid()}", log_name="celery-worker-demo.log")
    process.media_root = tmp_path
    conftest._worker_running.append(process)
    yield process
    conftest._worker_running.remove(process)
    worker_stop(process)  # a warm shutdown: the task it runs ends first
    app.control.purge()  # what it left queued belongs to this test's rows, which are about to go
    for queue in QUEUES if session else ():
        app.control.add_consumer(queue, destination=[session], reply=True)


@pytest.fixture
def webhooks(demo_settings, live_server, fake_postmark):
    """The fake Postmark reports on each accepted message to the live site's tracking webhook (seeded)."""
    fake_postmark.reset()
    tracking = live_server.url + reverse("anymail:postmark_tracking_webhook")
    sender = WebhookSender(url=tracking, auth=WEBHOOK_SECRET, time_scale=SCALE, seed=14).start()
    fake_postmark.webhooks = sender
    yield sender
    fake_postmark.webhooks = None
    sender.stop()


@pytest.fixture
def simulated_shop(demo_worker, live_server, fake_postmark):
    """`manage.py simulate_shop` against the live site, a turn a second, as `make run` starts it."""
    log = open(ARTIFACTS / "simulate-shop.log", "w")
    process = subprocess.Popen(
        [sys.executable, "manage.py", "simulate_shop", "--site", live_server.url, "--tick", "1", "--seed", "demo-loop"],
        cwd=REPO, env=demo_env(fake_postmark, demo_worker.media_root, live_server), stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    yield process
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()
    assert process.returncode in (0, -15), f"simulate_shop failed; see {log.name}"


@pytest.fixture
def demo_shop(demo_worker, roles, settings):
    """A small shop with a year of yogurt, bread and soda, the model trained on it, and what `make run` makes:
    the users, a promotion and an audience."""
    settings.MEDIA_ROOT = demo_worker.media_root  # the worker loads the model from where this process saves it
    synthetic_customers(customers=CUSTOMERS, seed="demo-loop", until=timezone.now() - timezone.timedelta(days=2))
    admin = UserFactory(username="admin", is_superuser=True)
    for name in ("marketer", "approver"):
        UserFactory(username=name).groups.add(roles[name])
    version = modelversion_train(version_id=ModelVersion.objects.create(algorithm="transitions").id)
    modelversion_activate(version=version, by=admin)
    Promotion.objects.create(
        name="15% off yogurt", kind=Promotion.Kind.PERCENT_OFF, value=15, categories=["Dairy > Yogurt"],
        ends_at=timezone.now() + timezone.timedelta(days=60), code_mode=Promotion.CodeMode.SHARED, shared_code=CODE,
    )  # fmt: skip
    Audience.objects.create(name="Everyone", rules={"match": "all", "rules": []}, created_by=admin)


def batch_row(page):
    """The batches table's one row, as {column: text}."""
    cells = page.locator("#batches-table tbody tr").first.locator("td").all_inner_texts()
    return dict(zip(COLUMNS, (" ".join(cell.split()) for cell in cells), strict=True))


def number(text):
    return int(text.replace(",", ""))


def dashboard_until(page, url, predicate, timeout):
    """Reload the dashboard, as a marketer would, until predicate(row) holds; the last row read."""
    deadline = time.monotonic() + timeout
    while True:
        page.goto(url)
        row = batch_row(page) if page.locator("#batches-table").count() else None
        if row and predicate(row):
            return row
        if time.monotonic() > deadline:
            pytest.fail(f"the dashboard did not show it within {timeout}s; last row: {row}")
        page.wait_for_timeout(2000)


def create_campaign(page, url):
    page.goto(f"{url}/admin/campaigns/campaign/add/")
    page.fill("#id_name", "Yogurt week")
    page.select_option("#id_audience", label="Everyone")
    page.select_option("#id_promotions_from", label="15% off yogurt")
    page.click("#id_promotions_add")
    page.fill("#id_holdout_percent", "30")
    page.click("input[name=_continue]")
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")


def approve(browser, live_server, batch):
    other = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    login(other, live_server, "approver")
    other.goto(f"{live_server.url}/admin/campaigns/batch/{batch.pk}/change/")
    other.fill("#id_comment", "Yogurt offer and audience checked.")
    other.click("#approve")
    expect(other.locator("#batch-status")).to_have_text("Approved")
    shot(other, "4-approved")
    other.context.close()


def test_the_demo_loop_closes_in_the_browser(page, browser, live_server, demo_shop, webhooks, simulated_shop):
    url = live_server.url
    # the marketer creates a campaign and generates its batch
    login(page, live_server, "marketer")
    expect(page.locator("#next-steps")).to_be_visible()
    shot(page, "1-first-page")
    create_campaign(page, url)
    expect(page.locator("#preview-subject")).to_contain_text("15% off")  # the live preview, for a sample customer
    shot(page, "2-campaign")
    page.click("#generate-batch")
    expect(page.locator("#batch-status")).to_have_text("In review", timeout=120_000)
    expect(page.locator("#n-total")).to_have_text(f"{CUSTOMERS:,}")
    shot(page, "3-batch-review")
    batch = Batch.objects.get()

    # another user approves it; the marketer sends it
    approve(browser, live_server, batch)
    page.goto(f"{url}/admin/campaigns/batch/{batch.pk}/change/")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#send-batch")
    expect(page.locator("#batch-status")).to_have_text("Sent", timeout=120_000)
    shot(page, "5-sent")
    sent = batch.recipients.filter(send_status=Recipient.SendStatus.SENT).count()
    assert sent > 0

    # the provider's webhooks and the shop's purchases come in: the dashboard shows the funnel, conversions
    # and an uplift interval while the window is still open
    def measuring(row):
        stages = ("delivered", "opened", "clicked", "converted")
        return all(number(row[stage]) > 0 for stage in stages) and "pts [" in row["uplift"]

    row = dashboard_until(page, f"{url}/", measuring, timeout=90)
    assert number(row["sent"]) == sent
    assert sent >= number(row["delivered"]) >= number(row["opened"]) >= number(row["clicked"])
    assert re.fullmatch(r"[+-]\d+\.\d pts \[[+-]\d+\.\d pts, [+-]\d+\.\d pts\] .+", row["uplift"]), row
    expect(page.locator("#chart-funnel .main-svg").first).to_be_visible()
    shot(page, "6-dashboard-measuring")

    # the window closes; the simulator has posted its whole plan; beat's periodic refresh (every 5 minutes in
    # `make run`) is sent now, as beat would, so the figures include the window's last purchases
    simulation = SimulatedBatch.objects.get(batch=batch)
    wait_for(lambda: simulation.window_end <= timezone.now(), timeout=120, interval=1)
    done = SimulatedBatch.objects.filter(id=simulation.id, posted=F("treated_buyers") + F("holdout_buyers"))
    wait_for(done.exists, timeout=60)
    simulation.refresh_from_db()
    refreshed_at = timezone.now()
    app.send_task("campaigns.tasks.stats_refresh", queue="default")
    wait_for(lambda: BatchUplift.objects.filter(batch=batch, computed_at__gte=refreshed_at).exists(), timeout=60)

    # the dashboard: the simulated truth beside the measured uplift, the buyers as the simulator recorded them
    page.goto(f"{url}/")
    truth = page.locator("#simulated-truth-table .truth-row")
    expect(truth).to_have_count(1)
    expect(truth.locator(".true-uplift")).to_have_text(f"{simulation.true_uplift * 100:+.1f} pts")
    expect(truth).to_contain_text(
        f"{simulation.treated_buyers} of {simulation.treated} / {simulation.holdout_buyers} of {simulation.holdout}"
    )
    row = batch_row(page)
    n_treated, n_holdout = (number(n) for n in re.search(r"n = ([\d,]+) / ([\d,]+)", row["response"]).groups())
    held_out = batch.recipients.filter(reason=Recipient.Reason.HOLDOUT).count()
    assert (n_treated, n_holdout) == (simulation.treated, simulation.holdout) == (sent, held_out)
    groups = BatchUplift.objects.get(batch=batch).groups
    assert int(groups["treated"]["responders"]) == simulation.treated_buyers
    assert int(groups["holdout"]["responders"]) == simulation.holdout_buyers
    assert Conversion.objects.filter(batch=batch, rule=Conversion.Rule.CODE).count() == simulation.code_purchases > 0
    assert MessageEvent.objects.filter(recipient__batch=batch, kind=MessageEvent.Kind.CLICKED, is_bot=False).exists()
    expect(page.locator("#content-main")).to_contain_text("(in the demo, 1 minute of real time)")
    shot(page, "7-dashboard-truth")
