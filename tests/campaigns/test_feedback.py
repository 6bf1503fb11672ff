import uuid
from datetime import timedelta

import numpy as np
import pytest
from django.urls import reverse
from django.utils import timezone

from campaigns import links
from campaigns.messages import recipient_message
from campaigns.models import MessageEvent, Recipient
from campaigns.rendering import template_check
from campaigns.services.feedback import feedback_rate_by_campaign
from recommender import serving
from recommender.interactions import histories_for, interactions_load
from shop.models import Customer, Event, EventType
from tests.campaigns.test_generation import generate
from tests.campaigns.tracking_helpers import CHROME, WEBHOOK_SECRET, delivery, post_webhook

Kind = MessageEvent.Kind
BODY = (
    "{% for item in items %}<a href='{{ item.url }}'>{{ item.title }}</a>"
    "<a href='{{ item.not_interested_url }}'>Not interested</a>{% endfor %}"
)


@pytest.fixture
def batch(campaign, active_model, marketer):
    """A generated batch whose messages went to Postmark an hour ago.

    Generated, not built by a factory: these tests need generation's own recommendations and rendered links.
    """
    campaign.body_template = BODY
    campaign.save()
    batch = generate(campaign, marketer)
    rows = list(batch.recipients.filter(outcome=Recipient.Outcome.RECIPIENT))
    sent_at = timezone.now() - timedelta(hours=1)
    for row in rows:
        row.send_status, row.sent_at = Recipient.SendStatus.SENT, sent_at
        row.provider_message_id = str(uuid.uuid4())
    Recipient.objects.bulk_update(rows, ["send_status", "sent_at", "provider_message_id"])
    return batch


@pytest.fixture
def message(batch):
    return batch.recipients.filter(outcome=Recipient.Outcome.RECIPIENT).select_related("customer").first()


def not_interested_url(row, item_id):
    return reverse("campaigns:not_interested", args=[links.not_interested_token(row.id, item_id)])


def say_not_interested(client, row, item_id):
    return client.post(not_interested_url(row, item_id), HTTP_USER_AGENT=CHROME)


def shown(batch, customer_id):
    row = batch.recipients.get(customer_id=customer_id)
    return row, {entry["item_id"] for entry in row.items}


@pytest.mark.django_db
class TestTheLink:
    def test_every_item_in_a_message_has_its_signed_link(self, message):
        for entry in message.items:
            assert (
                links.not_interested_url(message.id, entry["item_id"]).replace("&", "&amp;")
                in recipient_message(message)[1]
            )

    def test_the_field_is_documented(self):
        template_check("{% for item in items %}{{ item.not_interested_url }}{% endfor %}")

    def test_a_get_asks_and_changes_nothing(self, client, message):
        item_id = message.items[0]["item_id"]
        # when
        page = client.get(not_interested_url(message, item_id), HTTP_USER_AGENT=CHROME)
        # then
        assert page.status_code == 200 and b'method="post"' in page.content
        assert not MessageEvent.objects.exists()
        assert not Event.objects.filter(type=EventType.NOT_INTERESTED).exists()

    def test_a_get_of_unsubscribe_changes_nothing(self, client, message):
        client.get(reverse("campaigns:unsubscribe", args=[links.unsubscribe_token(message.id)]))
        assert Customer.objects.get(pk=message.customer_id).unsubscribed_at is None
        assert not MessageEvent.objects.exists()

    def test_a_post_stores_the_feedback_once(self, client, message):
        item_id = message.items[0]["item_id"]
        # when
        first, second = say_not_interested(client, message, item_id), say_not_interested(client, message, item_id)
        # then
        assert first.status_code == second.status_code == 200
        feedback = MessageEvent.objects.get()
        assert (feedback.kind, feedback.recipient_id, feedback.item_id, feedback.is_bot) == (
            Kind.NOT_INTERESTED,
            message.id,
            item_id,
            False,
        )
        shop_event = Event.objects.get(type=EventType.NOT_INTERESTED)
        assert (shop_event.customer_id, shop_event.item_id, shop_event.source) == (
            message.customer_id,
            item_id,
            "promo_site",
        )

    def test_a_forged_or_foreign_link_is_not_found(self, client, message):
        assert client.post(reverse("campaigns:not_interested", args=["forged"])).status_code == 404
        assert client.post(not_interested_url(message, 10**9)).status_code == 404
        click_token = links.click_token(message.id, message.items[0]["item_id"])  # another link's token
        assert client.post(reverse("campaigns:not_interested", args=[click_token])).status_code == 404
        assert not MessageEvent.objects.exists()


@pytest.mark.django_db
class TestLaterBatches:
    @pytest.fixture(autouse=True)
    def _no_holdout(self, campaign, message):  # after `message`, which saves the campaign
        # The customer under test must not be drawn into a later batch's holdout (20% in the fixture).
        type(campaign).objects.filter(pk=campaign.pk).update(holdout_percent=0)

    def test_the_item_is_left_out_for_that_customer_only(self, client, message, campaign, marketer):
        # given
        item_id = message.items[0]["item_id"]
        others_with_it = [
            r.customer_id
            for r in message.batch.recipients.filter(outcome=Recipient.Outcome.RECIPIENT).exclude(id=message.id)
            if item_id in {e["item_id"] for e in r.items}
        ]
        # when
        say_not_interested(client, message, item_id)
        following = generate(campaign, marketer)
        # then
        row, items = shown(following, message.customer_id)
        assert row.outcome == Recipient.Outcome.RECIPIENT and item_id not in items
        assert others_with_it and all(item_id in shown(following, c)[1] for c in others_with_it)

    def test_after_repeated_feedback_the_category_is_left_out(self, client, message, campaign, marketer, settings):
        # given two "not interested" in skin care, the campaign's only promotion
        assert settings.FEEDBACK_CATEGORY_AFTER == 2
        say_not_interested(client, message, message.items[0]["item_id"])
        between = generate(campaign, marketer)
        assert shown(between, message.customer_id)[0].outcome == Recipient.Outcome.RECIPIENT  # one is not enough
        say_not_interested(client, message, message.items[1]["item_id"])
        # when
        following = generate(campaign, marketer)
        # then no skin care is left to show this customer
        row, items = shown(following, message.customer_id)
        assert (row.outcome, row.reason, items) == ("excluded", Recipient.Reason.NO_ELIGIBLE_ITEM, set())


@pytest.mark.django_db
class TestRetraining:
    def test_training_histories_drop_the_customers_earlier_interest(self, client, message, active_model):
        # given an item the customer bought
        bought = Event.objects.filter(customer_id=message.customer_id, type="purchase").first().item_id
        before = interactions_load()
        index = before.item_index()
        position = list(before.customer_ids).index(message.customer_id)
        assert index[bought] in before.histories[position]
        # when they say "not interested" in it
        Recipient.objects.filter(id=message.id).update(items=message.items + [{"item_id": bought}])
        message.refresh_from_db()
        say_not_interested(client, message, bought)
        # then their earlier purchase of it is no longer a positive example, nor scored at serving
        after = interactions_load(item_ids=before.item_ids)
        assert index[bought] not in after.histories[position]
        assert len(after.histories[position]) == len(before.histories[position]) - 1
        others = [h for n, h in enumerate(after.histories) if n != position]
        assert sum(map(len, others)) == sum(len(h) for n, h in enumerate(before.histories) if n != position)
        histories, _types, _stamps = histories_for(customer_ids=[message.customer_id], item_ids=before.item_ids)
        assert index[bought] not in histories[0]

    def test_serving_never_shows_it_again(self, client, message, active_model):
        customer_id = message.customer_id

        def showable():
            served = serving.served_model()
            (chunk,) = serving.serve_chunks(served, customer_ids=[customer_id])
            return {int(served.item_ids[column]) for column in np.flatnonzero(chunk.showable[0])}

        # given the model's first choice for the customer, shown in their message
        item_id = message.items[0]["item_id"]
        assert item_id in showable()
        # when
        say_not_interested(client, message, item_id)
        # then
        assert item_id not in showable()


@pytest.mark.django_db
class TestFeedbackRate:
    def test_not_interested_per_delivered_message_without_bots(self, client, batch, settings):
        # given four delivered messages, two with feedback from people and one from a script
        settings.ANYMAIL = {**settings.ANYMAIL, "WEBHOOK_SECRET": WEBHOOK_SECRET}
        rows = list(batch.recipients.filter(outcome=Recipient.Outcome.RECIPIENT).select_related("batch", "customer"))
        for row in rows[:4]:
            post_webhook(client, delivery(row))
        say_not_interested(client, rows[0], rows[0].items[0]["item_id"])
        say_not_interested(client, rows[1], rows[1].items[0]["item_id"])
        client.post(not_interested_url(rows[2], rows[2].items[0]["item_id"]), HTTP_USER_AGENT="curl/8.5.0")
        # when
        rates = feedback_rate_by_campaign()
        # then
        rate = rates[batch.campaign_id]
        assert (rate.delivered, rate.not_interested, rate.rate) == (4, 2, 0.5)
        assert Event.objects.filter(type=EventType.NOT_INTERESTED).count() == 2  # a script's changes nothing

    def test_no_delivery_no_rate(self, batch):
        assert feedback_rate_by_campaign(campaign_ids=[batch.campaign_id]) == {}
