"""The fake Postmark reports on what it accepted: real webhooks to the real tracking endpoint, real clicks."""

import json
import time
import urllib.request

import pytest
from django.urls import reverse

from campaigns import links
from campaigns.models import MessageEvent, Recipient
from promo_site.fake_postmark import FakePostmark
from promo_site.fake_postmark_webhooks import BROWSER, WebhookSender
from shop.models import Customer
from tests.campaigns.tracking_helpers import WEBHOOK_SECRET
from tests.conftest import wait_for
from tests.factories import BatchFactory, ItemFactory, RecipientFactory

Kind = MessageEvent.Kind
ALWAYS = {"bounce": 0.0, "open": 1.0, "click": 1.0, "spam": 0.0}


@pytest.fixture
def tracked(settings, live_server):
    settings.ANYMAIL = {**settings.ANYMAIL, "WEBHOOK_SECRET": WEBHOOK_SECRET}
    settings.SITE_URL = live_server.url
    settings.BOT_CLICK_SECONDS = 1
    return live_server.url + reverse("anymail:postmark_tracking_webhook")


@pytest.fixture
def message(tracked):
    items = ItemFactory.create_batch(2)
    row = RecipientFactory(batch=BatchFactory(), items=[{"item_id": item.id} for item in items])
    links_html = "".join(f'<a href="{links.click_url(row.id, item.id)}">{item}</a>' for item in items)
    Recipient.objects.filter(id=row.id).update(body_html=f"<p>Picked for you</p>{links_html}")
    return row


def send_through(fake, row):
    """What the product's sender does: POST /email with our key as metadata."""
    html = Recipient.objects.get(id=row.id).body_html
    body = {"From": "promotions@example.test", "To": row.customer.email, "Subject": "Picked for you",
            "HtmlBody": html, "Metadata": {"promo_message": str(row.id)}}  # fmt: skip
    request = urllib.request.Request(
        fake.url + "email", data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", "X-Postmark-Server-Token": fake.token},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200


def fake_with(tracked, **rates):
    sender = WebhookSender(url=tracked, auth=WEBHOOK_SECRET, time_scale=1e6, seed=7, rates=rates, min_click_seconds=2)
    return FakePostmark(webhooks=sender).start()


@pytest.mark.django_db(transaction=True)
def test_it_reports_delivery_open_and_a_human_click_through_the_messages_own_link(tracked, message):
    fake = fake_with(tracked, **ALWAYS)
    try:
        # when
        send_through(fake, message)
        events = wait_for(lambda: MessageEvent.objects.filter(recipient=message, kind=Kind.CLICKED).count() == 2, 30)
        # then: Postmark's delivery and open, our own click (the link followed) and Postmark's report of it
        assert events
        found = MessageEvent.objects.filter(recipient=message)
        assert sorted(found.values_list("kind", "source")) == [
            (Kind.CLICKED, "ours"), (Kind.CLICKED, "provider"), (Kind.DELIVERED, "provider"), (Kind.OPENED, "provider"),
        ]  # fmt: skip
        assert not found.filter(is_bot=True).exists()  # a browser, after the scanner window: a person
        ours = found.get(kind=Kind.CLICKED, source="ours")
        assert ours.item_id in {entry["item_id"] for entry in message.items} and ours.user_agent == BROWSER
        assert Recipient.objects.get(id=message.id).delivery_status == Recipient.Delivery.DELIVERED
        assert all(status == 200 for _kind, _id, status in fake.webhooks.posted)
    finally:
        fake.stop()


@pytest.mark.django_db(transaction=True)
def test_a_hard_bounce_suppresses_the_customer(tracked, message):
    fake = fake_with(tracked, bounce=1.0, hard_bounce=1.0)
    try:
        send_through(fake, message)
        wait_for(lambda: Customer.objects.get(id=message.customer_id).suppressed, 30)
        assert list(MessageEvent.objects.filter(recipient=message).values_list("kind", flat=True)) == [Kind.BOUNCED]
    finally:
        fake.stop()


def test_it_retries_a_webhook_the_site_did_not_take():
    # given: nothing listens on the tracking URL
    sender = WebhookSender(url="http://127.0.0.1:9/anymail/", auth="a:b", time_scale=1e6, rates={"open": 0.0})
    sender.start()
    try:
        sender.message_accepted({"MessageID": "m-1", "To": "a@example.test", "HtmlBody": ""})
        deadline = time.monotonic() + 20
        while len(sender.posted) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        # then: the delivery failed and was tried again
        assert [kind for kind, _id, _status in sender.posted[:2]] == ["Delivery", "Delivery"]
        assert all(str(status).startswith("error") for *_rest, status in sender.posted)
    finally:
        sender.stop()
