from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from campaigns import links
from campaigns.checks import webhook_secret_check
from campaigns.models import MessageEvent, Recipient
from campaigns.services.bots import user_agent_verdict
from shop.models import Customer, Item
from tests.campaigns.test_generation import generate
from tests.campaigns.tracking_helpers import (
    CHROME,
    WEBHOOK_SECRET,
    bounce,
    click,
    delivery,
    open_,
    post_webhook,
    spam_complaint,
    subscription_change,
)
from tests.factories import RecipientFactory

Kind = MessageEvent.Kind


@pytest.fixture(autouse=True)
def real_shop(settings):
    """A shop of one's own (the default, shop.example.test, is the demo's: links land on our demo page)."""
    settings.SHOP_ITEM_URL = "https://shop.example.com/items/{external_id}"


@pytest.fixture
def webhook_secret(settings):
    settings.ANYMAIL = {**settings.ANYMAIL, "WEBHOOK_SECRET": WEBHOOK_SECRET}


@pytest.fixture
def items(shop):
    """What a message shows: four of the shop's items."""
    return [{"item_id": item.id} for item in shop["items"][:4]]


@pytest.fixture
def message(campaign, items, webhook_secret):
    """A message of the campaign to one of the shop's contactable customers, sent an hour ago."""
    return RecipientFactory(batch__campaign=campaign, customer=Customer.objects.contactable().first(), items=items)


def customer_of(row):
    return Customer.objects.get(pk=row.customer_id)


def get_click(client, row, item_id, user_agent=CHROME):
    return client.get(reverse("campaigns:click", args=[links.click_token(row.id, item_id)]), HTTP_USER_AGENT=user_agent)


@pytest.mark.django_db
class TestWebhookAuthentication:
    @pytest.mark.parametrize("auth", [None, "postmark:wrong-password", "someone:correct-horse-battery-staple"])
    def test_it_refuses_a_post_without_the_secret_and_stores_nothing(self, client, message, auth):
        # when
        response = post_webhook(client, spam_complaint(message), auth=auth)
        # then
        assert response.status_code == 400
        assert not MessageEvent.objects.exists()
        assert not customer_of(message).suppressed

    def test_it_refuses_every_post_while_no_secret_is_set(self, client, message, settings, caplog):
        # given: the default, no secret (anymail alone would accept anyone)
        settings.ANYMAIL = {key: value for key, value in settings.ANYMAIL.items() if key != "WEBHOOK_SECRET"}
        # when: a forged hard bounce, with or without some basic auth
        responses = [post_webhook(client, bounce(message, "HardBounce"), auth=auth) for auth in (None, "a:b")]
        # then
        assert [r.status_code for r in responses] == [403, 403]
        assert not MessageEvent.objects.exists()
        assert not customer_of(message).suppressed
        assert "ANYMAIL_WEBHOOK_SECRET is not set" in caplog.text

    def test_it_accepts_the_secret(self, client, message):
        assert post_webhook(client, delivery(message)).status_code == 200
        assert MessageEvent.objects.filter(kind=Kind.DELIVERED).count() == 1

    def test_the_deploy_check_warns_without_a_secret(self, settings):
        settings.ANYMAIL = {}
        assert [w.id for w in webhook_secret_check(None)] == ["campaigns.W001"]
        settings.ANYMAIL = {"WEBHOOK_SECRET": WEBHOOK_SECRET}
        assert webhook_secret_check(None) == []


@pytest.mark.django_db
class TestProviderEvents:
    def test_a_delivery_moves_the_message_to_delivered(self, client, message):
        at = timezone.now() - timedelta(minutes=5)
        post_webhook(client, delivery(message, at=at))
        message.refresh_from_db()
        assert message.delivery_status == Recipient.Delivery.DELIVERED
        assert abs(message.delivered_at - at) < timedelta(milliseconds=1)
        event = MessageEvent.objects.get()
        assert (event.recipient_id, event.source, event.occurred_at) == (message.id, "provider", message.delivered_at)
        assert event.event_id.startswith("postmark:sha256:")

    def test_a_hard_bounce_suppresses_the_customer(self, client, message):
        post_webhook(client, bounce(message, "HardBounce"))
        message.refresh_from_db()
        assert message.delivery_status == Recipient.Delivery.BOUNCED
        customer = customer_of(message)
        assert customer.suppressed and "hard bounce (HardBounce)" in customer.suppressed_reason
        event = MessageEvent.objects.get()
        assert event.detail["permanent"] is True and event.event_id.startswith("postmark:43233720")

    def test_a_soft_bounce_does_not(self, client, message):
        post_webhook(client, bounce(message, "SoftBounce"))
        message.refresh_from_db()
        assert message.delivery_status == Recipient.Delivery.BOUNCED
        assert not customer_of(message).suppressed
        assert MessageEvent.objects.get().detail == {
            "esp": "Postmark",
            "event_type": "bounced",
            "description": "Unable to temporarily deliver this email.",
            "mta_response": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
            "bounce_type": "SoftBounce",
            "permanent": False,
        }

    def test_a_complaint_suppresses_and_the_next_batch_leaves_the_customer_out(
        self, client, message, campaign, active_model, marketer
    ):
        # given
        post_webhook(client, delivery(message))
        # when
        post_webhook(client, spam_complaint(message))
        # then
        message.refresh_from_db()
        assert message.delivery_status == Recipient.Delivery.COMPLAINED
        assert customer_of(message).suppressed_reason == f"spam complaint about message {message.id}"
        following = generate(campaign, marketer)
        assert following.recipients.get(customer_id=message.customer_id).reason == Recipient.Reason.SUPPRESSED

    def test_an_unsubscribe_at_the_provider_unsubscribes(self, client, message):
        post_webhook(client, subscription_change(message, "ManualSuppression"))
        assert MessageEvent.objects.get().kind == Kind.UNSUBSCRIBED
        assert customer_of(message).unsubscribed_at is not None
        assert not customer_of(message).suppressed

    def test_a_suppression_after_a_hard_bounce_is_not_a_second_bounce(self, client, message):
        post_webhook(client, bounce(message, "HardBounce"))
        post_webhook(client, subscription_change(message, "HardBounce"))
        assert MessageEvent.objects.filter(kind=Kind.BOUNCED).count() == 1

    def test_the_state_never_moves_back(self, client, message):
        post_webhook(client, spam_complaint(message))
        post_webhook(client, delivery(message))  # late
        message.refresh_from_db()
        assert message.delivery_status == Recipient.Delivery.COMPLAINED and message.delivered_at is not None

    def test_without_our_metadata_the_message_is_found_by_the_providers_id(self, client, message):
        post_webhook(client, delivery(message, metadata=False))
        assert MessageEvent.objects.get().recipient_id == message.id

    def test_an_unknown_message_stores_nothing_and_is_accepted(self, client, message):
        payload = delivery(message, metadata=False) | {"MessageID": "00000000-0000-0000-0000-000000000000"}
        assert post_webhook(client, payload).status_code == 200
        assert not MessageEvent.objects.exists()

    def test_an_open_is_stored_and_a_proxy_open_is_a_persons(self, client, message):
        gmail = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
        post_webhook(client, open_(message, user_agent=gmail))
        post_webhook(client, open_(message, at=timezone.now() + timedelta(seconds=1), user_agent="curl/8.5.0"))
        opens = MessageEvent.objects.filter(kind=Kind.OPENED)
        assert [(o.is_bot, o.bot_reason) for o in opens] == [
            (False, ""),
            (True, "user agent of an HTTP library (curl/)"),
        ]
        assert MessageEvent.objects.human().filter(kind=Kind.OPENED).count() == 1

    def test_a_provider_click_on_our_link_names_the_item(self, client, message):
        item_id = message.items[0]["item_id"]
        post_webhook(client, click(message, links.click_url(message.id, item_id)))
        event = MessageEvent.objects.get()
        assert (event.kind, event.item_id, event.is_bot) == (Kind.CLICKED, item_id, False)


@pytest.mark.django_db
class TestDuplicates:
    @pytest.mark.parametrize("payload", [delivery, spam_complaint, open_, subscription_change])
    def test_a_webhook_delivered_twice_counts_once(self, client, message, payload):
        body = payload(message)
        # when
        first, second = post_webhook(client, body), post_webhook(client, body)
        # then
        assert first.status_code == second.status_code == 200
        assert MessageEvent.objects.count() == 1

    def test_two_opens_are_two_events(self, client, message):
        post_webhook(client, open_(message))
        post_webhook(client, open_(message, at=timezone.now() + timedelta(minutes=3)))
        assert MessageEvent.objects.filter(kind=Kind.OPENED).count() == 2


@pytest.mark.django_db
class TestOurClicks:
    def test_a_click_is_recorded_and_redirects(self, client, message):
        item_id = message.items[0]["item_id"]
        # when
        response = get_click(client, message, item_id)
        get_click(client, message, item_id)
        # then
        assert response.status_code == 302 and response.url.startswith("https://shop.example.com/items/")
        clicks = MessageEvent.objects.filter(kind=Kind.CLICKED)
        assert [(c.recipient_id, c.item_id, c.source, c.is_bot, c.user_agent) for c in clicks] == [
            (message.id, item_id, "ours", False, CHROME)
        ] * 2

    def test_a_forged_token_is_not_found_and_stores_nothing(self, client, message):
        token = links.click_token(message.id, message.items[0]["item_id"])
        assert client.get(reverse("campaigns:click", args=[token[:-2] + "xx"])).status_code == 404
        assert client.get(reverse("campaigns:click", args=[links.click_token(message.id, 10**9)])).status_code == 404
        assert not MessageEvent.objects.exists()

    @pytest.mark.parametrize(
        "user_agent",
        [
            "python-requests/2.31.0",
            "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
            "Microsoft Office Existence Discovery",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0 Safari/537.36",
            "Mozilla/5.0 (compatible; Barracuda Sentinel)",
            "",
        ],
    )
    def test_a_scanners_click_is_flagged_and_still_redirected(self, client, message, user_agent):
        response = get_click(client, message, message.items[0]["item_id"], user_agent=user_agent)
        assert response.status_code == 302
        click_event = MessageEvent.objects.get()
        assert click_event.is_bot and click_event.bot_reason
        assert not MessageEvent.objects.human().exists()

    def test_a_head_request_is_a_link_checker(self, client, message):
        token = links.click_token(message.id, message.items[0]["item_id"])
        client.head(reverse("campaigns:click", args=[token]), HTTP_USER_AGENT=CHROME)
        assert MessageEvent.objects.get().bot_reason == "HEAD request (a link checker)"

    def test_a_click_in_a_message_not_sent_records_nothing(self, client, campaign, active_model, marketer):
        # given a batch in review: its links reach people only through test sends
        row = generate(campaign, marketer).recipients.filter(outcome=Recipient.Outcome.RECIPIENT).first()
        # when
        response = get_click(client, row, row.items[0]["item_id"])
        # then
        assert response.status_code == 302 and not MessageEvent.objects.exists()


@pytest.mark.django_db
class TestItemLinkTarget:
    def test_in_the_demo_a_click_lands_on_the_demo_shops_product_page(self, client, message, settings):
        # given the demo's shop, on a host that answers nowhere
        settings.SHOP_ITEM_URL = "https://shop.example.test/items/{external_id}"
        item = Item.objects.get(pk=message.items[0]["item_id"])
        Item.objects.filter(pk=item.pk).update(attributes={"url": "https://shop.example.test/p/x"})
        # when the customer clicks
        response = get_click(client, message, item.id)
        # then the click is recorded and lands on our small product page
        assert response.status_code == 302
        assert response.url == reverse("campaigns:demo_item", args=[item.external_id])
        page = client.get(response.url)
        assert page.status_code == 200 and item.title in page.content.decode() and item.brand in page.content.decode()
        assert MessageEvent.objects.filter(kind=Kind.CLICKED).count() == 1

    def test_the_demo_product_page_exists_only_for_the_demo_shop(self, client, message):
        item = Item.objects.get(pk=message.items[0]["item_id"])
        assert client.get(reverse("campaigns:demo_item", args=[item.external_id])).status_code == 404

    @pytest.fixture
    def item(self, message):
        return Item.objects.get(pk=message.items[0]["item_id"])

    def land(self, client, message, item, url):
        Item.objects.filter(pk=item.pk).update(attributes={"url": url})
        return get_click(client, message, item.id)

    @pytest.mark.parametrize(
        "url",
        [
            "https://shop.example.com/p/spring-serum?ref=mail",
            "https://www.shop.example.com/p/spring-serum",
        ],
    )
    def test_it_follows_an_item_url_on_the_shops_hosts(self, client, message, item, url, settings):
        # given a second host of the shop, and the item's own URL
        settings.SHOP_LINK_HOSTS = ["www.shop.example.com"]
        # when
        response = self.land(client, message, item, url)
        # then
        assert response.status_code == 302 and response.url == url

    @pytest.mark.parametrize(
        "url",
        [
            "https://evil.example/phish",
            "//evil.example/phish",
            "https://shop.example.com@evil.example/",
            "https://evil.example\\@shop.example.com/",
            "https://shop.example.com.evil.example/",
            "https://shop.example.com:8443/p/spring-serum",  # another service on the shop's host
            "javascript:alert(1)",
            "/admin/",
            42,
        ],
    )
    def test_it_never_redirects_off_the_shop(self, client, message, item, url):
        # when the item's URL attribute leads elsewhere (it comes in through the shop's API)
        response = self.land(client, message, item, url)
        # then the click goes to the item's page on the shop, and is still recorded
        assert response.status_code == 302
        assert response.url == f"https://shop.example.com/items/{item.external_id}"
        assert MessageEvent.objects.filter(kind=Kind.CLICKED).count() == 1


@pytest.mark.django_db
class TestUnsubscribeLink:
    def test_a_get_changes_nothing_and_a_post_counts_once(self, client, message):
        url = reverse("campaigns:unsubscribe", args=[links.unsubscribe_token(message.id)])
        # when
        client.get(url, HTTP_USER_AGENT=CHROME)
        # then
        assert customer_of(message).unsubscribed_at is None and not MessageEvent.objects.exists()
        # when
        client.post(url, HTTP_USER_AGENT=CHROME)
        client.post(url, {"List-Unsubscribe": "One-Click"})
        # then
        assert customer_of(message).unsubscribed_at is not None
        event = MessageEvent.objects.get()
        assert (event.kind, event.source, event.recipient_id) == (Kind.UNSUBSCRIBED, "ours", message.id)

    @pytest.mark.parametrize("never_sent", ["holdout", "in review", "failed"])
    def test_it_unsubscribes_nobody_through_a_message_never_sent(self, client, campaign, items, never_sent):
        # given a message that never reached a mailbox
        shapes = {
            "holdout": dict(holdout=True),
            "in review": dict(send_status="", sent_at=None, provider_message_id=""),
            "failed": dict(send_status=Recipient.SendStatus.FAILED, sent_at=None, provider_message_id=""),
        }
        row = RecipientFactory(batch__campaign=campaign, items=items, **shapes[never_sent])
        url = reverse("campaigns:unsubscribe", args=[links.unsubscribe_token(row.id)])
        # when its token is posted, by a form or a one-click mailbox
        page = client.post(url, HTTP_USER_AGENT=CHROME)
        one_click = client.post(url, {"List-Unsubscribe": "One-Click"})
        # then the pages answer as usual and nothing changes
        assert page.status_code == 200 and one_click.content == b"unsubscribed"
        assert customer_of(row).unsubscribed_at is None and not MessageEvent.objects.exists()


@pytest.mark.django_db
class TestLinkScanners:
    def test_clicks_on_every_link_right_after_delivery_are_flagged(self, client, items):
        # given a message just sent and delivered
        row = RecipientFactory(batch__sent_at=timezone.now(), items=items)
        assert len(row.items) > 1
        # when a browser-like agent follows every item link at once
        for entry in row.items:
            get_click(client, row, entry["item_id"])
        # then
        clicks = MessageEvent.objects.filter(kind=Kind.CLICKED)
        assert len(clicks) == len(row.items)
        assert all(c.is_bot and "every item link clicked within 10 s" in c.bot_reason for c in clicks)

    def test_clicks_on_only_some_links_are_a_persons(self, client, items):
        row = RecipientFactory(batch__sent_at=timezone.now(), items=items)
        for entry in row.items[:-1]:
            get_click(client, row, entry["item_id"])
        assert MessageEvent.objects.human().filter(kind=Kind.CLICKED).count() == len(row.items) - 1

    def test_a_scan_at_delivery_is_flagged_and_a_later_click_is_not(self, client, message):
        # given Postmark reports delivery an hour ago, and clicks on every link two seconds later
        delivered = timezone.now() - timedelta(hours=1)
        post_webhook(client, delivery(message, at=delivered))
        post_webhook(client, open_(message, at=delivered + timedelta(seconds=1)))
        for n, entry in enumerate(message.items):
            url = links.click_url(message.id, entry["item_id"])
            post_webhook(client, click(message, url, at=delivered + timedelta(seconds=2, milliseconds=n)))
        # when the customer clicks now
        get_click(client, message, message.items[0]["item_id"])
        # then the scan (its open too) is flagged and the customer's click counts
        flagged = MessageEvent.objects.filter(is_bot=True)
        assert sorted(e.kind for e in flagged) == [Kind.CLICKED] * len(message.items) + [Kind.OPENED]
        human = MessageEvent.objects.human().exclude(kind=Kind.DELIVERED).get()
        assert (human.kind, human.source, human.item_id) == (Kind.CLICKED, "ours", message.items[0]["item_id"])

    def test_a_late_delivery_report_flags_the_scan_before_it(self, client, message):
        # given a message deferred for an hour after sending; the gateway scans it on arrival
        delivered = message.sent_at + timedelta(hours=1)
        for entry in message.items:
            url = links.click_url(message.id, entry["item_id"])
            post_webhook(client, click(message, url, at=delivered + timedelta(seconds=1)))
        assert MessageEvent.objects.filter(is_bot=True).count() == 0
        # when the delivery is reported after the clicks
        post_webhook(client, delivery(message, at=delivered))
        # then
        assert MessageEvent.objects.filter(kind=Kind.CLICKED, is_bot=True).count() == len(message.items)


class TestUserAgents:
    @pytest.mark.parametrize(
        "user_agent",
        [
            CHROME,
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko)",
            "Mozilla/5.0 (Linux; Android 12; CUBOT X30) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile",
        ],
    )
    def test_people_are_people(self, user_agent):
        assert user_agent_verdict(user_agent, kind=Kind.CLICKED) == ""

    def test_outlook_fetching_images_is_an_open_but_never_a_click(self):
        outlook = "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17328; Pro)"
        assert user_agent_verdict(outlook, kind=Kind.OPENED) == ""
        assert user_agent_verdict(outlook, kind=Kind.CLICKED).startswith("user agent of Microsoft Office's link check")
