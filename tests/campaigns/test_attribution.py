"""Attribution: the code, then the last human click within 7 days, then the last delivery within 3 days."""

import functools
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from campaigns.models import Conversion, Promotion
from campaigns.services.attribution import conversion_amounts, conversions_attribute
from tests.campaigns.conftest import promotion as make_promotion
from tests.conftest import wait_for
from tests.factories import (
    CampaignFactory,
    CustomerFactory,
    EventFactory,
    ItemFactory,
    MessageEventFactory,
    RecipientFactory,
    UserFactory,
)

SENT = timezone.now().replace(microsecond=0) - timedelta(days=30)
_events = iter(range(10**6))


@pytest.fixture
def promo(db):
    return make_promotion(name="20% off", shared_code="", code_mode=Promotion.CodeMode.POOL, value=20)


@pytest.fixture
def customer(db):
    return CustomerFactory(external_id="alice")


@pytest.fixture
def message(promo, customer):
    """Makes a message of the promotion to alice, in a batch of its own sent at SENT; keywords change it."""
    campaign = CampaignFactory(
        name="Attribution", audience__name="All", audience__rules={}, created_by=UserFactory(username="owner"),
        promotions=[promo],
    )  # fmt: skip
    return functools.partial(
        RecipientFactory, batch__campaign=campaign, batch__sent_at=SENT, customer=customer, promotion=promo
    )


def purchase(customer, at, **fields):
    fields.setdefault("value", "40.00")
    return EventFactory(customer=customer, occurred_at=at, client_event_id=f"p-{next(_events)}", **fields)


def attributed(event):
    conversions_attribute()
    return Conversion.objects.filter(event_id=event.id).first()


# --- the code ------------------------------------------------------------------------------


def test_it_credits_the_message_whose_code_was_used_however_late(message, customer, promo):
    # given a message with code ABC-1, and nothing else: no click, no delivery in any window
    m = message(code="ABC-1")
    version = promo.version
    # when a redemption names the code 25 days after the send
    event = purchase(
        customer,
        SENT + timedelta(days=25),
        type="coupon_redemption",
        discount="8.00",
        attributes={"coupon_code": "abc-1"},
    )
    # then the conversion is the code's, and the promotion's budget counters rise without an edit
    conversion = attributed(event)
    assert (conversion.rule, conversion.recipient_id, conversion.batch_id) == ("code", m.id, m.batch_id)
    promo.refresh_from_db()
    assert (promo.redemptions_used, promo.discount_used, promo.version) == (1, Decimal("8.00"), version)


def test_a_code_used_before_the_message_was_sent_is_not_the_messages(message, customer, promo):
    message(code="ABC-1")
    event = purchase(customer, SENT - timedelta(hours=1), attributes={"code": "ABC-1"})
    assert attributed(event) is None


def test_the_code_beats_a_later_click_which_beats_a_later_delivery(message, customer, promo):
    # given three messages: one with the code, one clicked, one delivered last
    coded = message(code="ABC-1")
    clicked = message(sent_at=SENT + timedelta(days=1))
    delivered = message(sent_at=SENT + timedelta(days=2))
    MessageEventFactory(recipient=clicked, kind="delivered", occurred_at=SENT + timedelta(days=1))
    MessageEventFactory(recipient=clicked, kind="clicked", occurred_at=SENT + timedelta(days=1, hours=1))
    MessageEventFactory(recipient=delivered, kind="delivered", occurred_at=SENT + timedelta(days=2))
    at = SENT + timedelta(days=2, hours=5)
    # when one purchase names the code and another does not
    with_code = purchase(customer, at, attributes={"coupon_code": "ABC-1"})
    without = purchase(customer, at)
    conversions_attribute()
    # then
    assert Conversion.objects.get(event_id=with_code.id).recipient_id == coded.id
    assert (
        Conversion.objects.get(event_id=without.id).rule,
        Conversion.objects.get(event_id=without.id).recipient_id,
    ) == (
        "click",
        clicked.id,
    )
    assert delivered.id not in set(Conversion.objects.values_list("recipient_id", flat=True))


def test_an_unknown_code_falls_back_to_the_click(message, customer, promo):
    m = message(code="ABC-1")
    MessageEventFactory(recipient=m, kind="clicked", occurred_at=SENT + timedelta(days=1))
    event = purchase(customer, SENT + timedelta(days=2), attributes={"coupon_code": "SOMEONE-ELSES"})
    assert attributed(event).rule == "click"


# --- the click window (7 days) ------------------------------------------------------------------


@pytest.mark.parametrize(
    "after, rule",
    [(timedelta(days=7), "click"), (timedelta(days=7, seconds=1), None), (timedelta(0), "click")],
    ids=["exactly-7-days-in", "a-second-past-out", "same-instant-in"],
)
def test_the_click_window_includes_its_edge(message, customer, promo, after, rule):
    m = message()
    # delivered long before: only the click can credit it
    MessageEventFactory(recipient=m, kind="delivered", occurred_at=SENT)
    clicked_at = SENT + timedelta(days=5)
    MessageEventFactory(recipient=m, kind="clicked", occurred_at=clicked_at)
    conversion = attributed(purchase(customer, clicked_at + after))
    assert (conversion.rule if conversion else None) == rule


def test_a_bot_click_is_not_a_click(message, customer, promo):
    m = message()
    MessageEventFactory(recipient=m, kind="delivered", occurred_at=SENT)
    MessageEventFactory(recipient=m, kind="clicked", occurred_at=SENT + timedelta(days=5), is_bot=True)
    assert attributed(purchase(customer, SENT + timedelta(days=6))) is None


def test_a_click_after_the_purchase_does_not_count(message, customer, promo):
    m = message()
    MessageEventFactory(recipient=m, kind="delivered", occurred_at=SENT)
    MessageEventFactory(recipient=m, kind="clicked", occurred_at=SENT + timedelta(days=5))
    assert attributed(purchase(customer, SENT + timedelta(days=5) - timedelta(seconds=1))) is None


def test_the_click_window_is_a_setting(message, customer, promo, settings):
    settings.ATTRIBUTION_CLICK_DAYS = 1
    m = message()
    MessageEventFactory(recipient=m, kind="delivered", occurred_at=SENT)
    MessageEventFactory(recipient=m, kind="clicked", occurred_at=SENT + timedelta(days=5))
    assert attributed(purchase(customer, SENT + timedelta(days=6, seconds=1))) is None


# --- the delivery window (3 days) -----------------------------------------------------------------


@pytest.mark.parametrize(
    "after, rule",
    [(timedelta(days=3), "delivery"), (timedelta(days=3, seconds=1), None)],
    ids=["exactly-3-days-in", "a-second-past-out"],
)
def test_the_delivery_window_includes_its_edge(message, customer, promo, after, rule):
    m = message()
    delivered_at = SENT + timedelta(minutes=2)
    MessageEventFactory(recipient=m, kind="delivered", occurred_at=delivered_at)
    conversion = attributed(purchase(customer, delivered_at + after))
    assert (conversion.rule if conversion else None) == rule


def test_without_delivery_reports_the_send_counts_as_the_delivery(message, customer, promo):
    # given a provider that reports no deliveries: the message has no event at all
    m = message()
    conversion = attributed(purchase(customer, SENT + timedelta(days=2)))
    assert (conversion.rule, conversion.recipient_id) == ("delivery", m.id)


def test_a_bounced_message_earns_nothing(message, customer, promo):
    m = message()
    MessageEventFactory(recipient=m, kind="bounced", occurred_at=SENT + timedelta(minutes=1))
    assert attributed(purchase(customer, SENT + timedelta(days=1))) is None


def test_the_last_delivered_message_wins(message, customer, promo):
    first = message()
    second = message(sent_at=SENT + timedelta(days=1))
    MessageEventFactory(recipient=first, kind="delivered", occurred_at=SENT)
    MessageEventFactory(recipient=second, kind="delivered", occurred_at=SENT + timedelta(days=1))
    assert attributed(purchase(customer, SENT + timedelta(days=2))).recipient_id == second.id


def test_only_the_customers_own_messages_count(message, customer, promo):
    other = CustomerFactory()
    m = message(customer=other, code="ABC-1")
    MessageEventFactory(recipient=m, kind="clicked", occurred_at=SENT + timedelta(days=1))
    assert attributed(purchase(customer, SENT + timedelta(days=1, hours=1), attributes={"code": "ABC-1"})) is None


# --- amounts and idempotence ------------------------------------------------------------------------


def test_it_stores_revenue_discount_and_margin(message, customer, promo, settings):
    settings.DEFAULT_MARGIN_RATE = 0.3
    m = message()
    costed = ItemFactory(cost="6.00")
    event = purchase(customer, SENT + timedelta(days=1), item=costed, value="16.00", discount="4.00", quantity=2)
    conversion = attributed(event)
    # margin at list price: (16 + 4) - 2 x 6 = 8; profit = margin - discount = 4 (= what was paid - cost)
    assert (conversion.revenue, conversion.discount, conversion.margin) == (
        Decimal("16.00"),
        Decimal("4.00"),
        Decimal("8.00"),
    )
    assert conversion.recipient_id == m.id
    uncosted = ItemFactory(cost=None)
    event.item, event.value, event.discount, event.quantity = uncosted, Decimal("16"), Decimal("4"), 1
    assert conversion_amounts(event, None) == (Decimal("16"), Decimal("4"), Decimal("6.00"))  # 0.3 x 20


def test_a_rerun_attributes_nothing_twice(message, customer, promo):
    message(code="ABC-1")
    purchase(customer, SENT + timedelta(days=1), attributes={"code": "ABC-1"}, discount="5.00")
    purchase(customer, SENT + timedelta(days=2))
    first = conversions_attribute()
    second = conversions_attribute()
    assert (first.attributed, second.attributed, second.examined) == (2, 0, 0)
    assert Conversion.objects.count() == 2
    promo.refresh_from_db()
    assert (promo.redemptions_used, promo.discount_used) == (1, Decimal("5.00"))


def test_it_looks_only_at_the_id_range_it_is_given(message, customer, promo):
    message()
    early = purchase(customer, SENT + timedelta(days=1))
    late = purchase(customer, SENT + timedelta(days=1))
    result = conversions_attribute(first_id=late.id, last_id=late.id)
    assert result.attributed == 1
    assert not Conversion.objects.filter(event_id=early.id).exists()


def test_views_are_never_conversions(message, customer, promo):
    message()
    assert attributed(purchase(customer, SENT + timedelta(days=1), type="view", value=None)) is None


# --- in a real worker, as events arrive through the API ------------------------------------------------


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_events_posted_to_the_api_are_attributed_by_the_worker(celery_worker, api, promo):
    # given a message sent an hour ago to alice, delivered
    customer = CustomerFactory(external_id="alice")
    sent = timezone.now() - timedelta(hours=1)
    m = RecipientFactory(
        batch__campaign__name="Live", batch__sent_at=sent, customer=customer, promotion=promo, code="LIVE-1"
    )
    batch = m.batch
    # when the shop posts her purchase with the code, and a view
    now = timezone.now().isoformat()
    events = [
        {"event_id": "o-1", "customer": "alice", "item": "sku-x", "type": "purchase", "occurred_at": now,
         "value": "30.00", "discount": "6.00", "attributes": {"coupon_code": "LIVE-1"}},
        {"event_id": "v-1", "customer": "alice", "item": "sku-x", "type": "view", "occurred_at": now},
    ]  # fmt: skip
    response = api.post("/api/v1/events/", {"source": "web", "events": events}, format="json")
    assert response.status_code == 200, response.content
    # then the worker attributes it to the message by its code, and refreshes the batch's aggregates
    conversion = wait_for(lambda: Conversion.objects.filter(recipient=m).first(), timeout=60)
    assert (conversion.rule, conversion.revenue, conversion.discount) == ("code", Decimal("30.00"), Decimal("6.00"))
    daily = wait_for(lambda: batch.daily_stats.filter(conversions=1).first(), timeout=90)
    assert (daily.revenue, daily.converted) == (Decimal("30.00"), 1)
