"""The purchase summary behind the behaviour rules (campaigns/purchase_summary.py): counts from it equal the
counts over the raw events, whatever was stored, back-dated, changed or deleted since its last refresh."""

import random
from datetime import timedelta
from decimal import Decimal

import psycopg
import pytest
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from campaigns.audiences import audience_count, audience_query
from campaigns.models import AudienceSummary, PurchaseDay
from campaigns.purchase_summary import PurchaseSource, summary_refresh
from campaigns.tasks import purchase_summary_refresh
from promo_site.models import OutboxTask
from shop.models import Customer, Event, Item
from shop.services.privacy import customer_erase
from shop.signals import events_stored
from tests.factories import CustomerFactory, EventFactory, ItemFactory, UserFactory

pytestmark = pytest.mark.django_db

FIELDS = ("recency_days", "frequency", "monetary")
OPS = {
    "recency_days": ["lte", "gte"],
    "frequency": ["gte", "lte", "gt", "lt", "eq"],
    "monetary": ["gte", "lte", "gt", "lt", "eq"],
}


def ids(rules, **kwargs):
    return set(audience_query(rules, **kwargs).values_list("id", flat=True))


def random_rules(rng):
    """A rule set of 1 to 3 purchase rules (sometimes with a category rule or a nested group)."""
    rules = []
    for _ in range(rng.randint(1, 3)):
        field = rng.choice(FIELDS)
        rule = {"field": field, "op": rng.choice(OPS[field])}
        if field == "recency_days":
            rule["value"] = rng.choice([1, 2.5, 7, 30, 89.75, 200])
        else:
            rule["value"] = rng.choice([0, 1, 2, 3, 2.5]) if field == "frequency" else rng.choice([0, 5, 19.9, 40, 120])
            rule["days"] = rng.choice([1, 3, 7.5, 30, 90, 365, 1000])
        rules.append(rule)
    if rng.random() < 0.2:
        rules.append({"field": "bought_category", "op": rng.choice(["yes", "no"]), "value": "Dairy", "days": 30})
    if rng.random() < 0.3:
        rules = [{"match": "any", "rules": rules[:2]}, *rules[2:]]
    return {"match": rng.choice(["all", "any"]), "rules": rules}


def assert_same_as_raw(rng, rule_sets=60):
    cache.delete("shop-clock")
    assert PurchaseSource.current() is not None, "the summary is not in use"
    for _ in range(rule_sets):
        rules = random_rules(rng)
        assert ids(rules) == ids(rules, summary=False), rules


@pytest.fixture
def history(db):
    """30 customers with purchases (some without a value) and views over 400 days; 3 customers with none."""
    rng = random.Random(15)
    now = timezone.now()
    items = [ItemFactory(category_path=path) for path in ("Dairy > Milk", "Dairy > Cheese", "Home")]
    customers = [CustomerFactory() for _ in range(33)]
    for customer in customers[:30]:
        for _ in range(rng.randint(1, 12)):
            value = rng.choice([None, "0.00", "4.99", "10.00", "19.90", "35.50"])
            when = now - timedelta(days=rng.uniform(0, 400))
            EventFactory(customer=customer, item=rng.choice(items), value=value, occurred_at=when)
        EventFactory(customer=customer, item=items[0], type="view", value=None, occurred_at=now - timedelta(days=1))
    EventFactory(customer=customers[0], item=items[0], occurred_at=now)  # the shop's clock
    return customers, items, now


def test_it_counts_the_same_customers_as_the_raw_events(history):
    # given: a refreshed summary
    summary_refresh()

    # then: every random rule set selects the same customers either way
    assert PurchaseDay.objects.exists()
    assert_same_as_raw(random.Random(1))


def test_it_stays_exact_for_events_stored_back_dated_changed_and_deleted_after_the_refresh(history):
    customers, items, now = history
    rng = random.Random(2)
    summary_refresh()
    # given: events stored after the refresh, some back-dated by a year, some on the windows' edge days
    for customer in customers[:10]:
        EventFactory(
            customer=customer, item=items[1], value="12.00", occurred_at=now - timedelta(days=rng.uniform(0, 2))
        )
        EventFactory(
            customer=customer, item=items[2], value=None, occurred_at=now - timedelta(days=rng.uniform(2, 380))
        )
        EventFactory(customer=customer, item=items[2], value="7.00", occurred_at=now - timedelta(days=30, hours=1))
    # and: summarized events changed (value, time, type) and deleted (a customer and an item, through the ORM)
    summarized = Event.objects.filter(type="purchase", customer__in=customers[10:20])
    summarized.filter(customer=customers[10]).update(value=Decimal("99.00"))
    summarized.filter(customer=customers[11]).update(occurred_at=now - timedelta(days=2))
    summarized.filter(customer=customers[12]).update(type="view")
    Event.objects.filter(customer=customers[13], type="purchase").delete()
    Customer.objects.filter(id=customers[14].id).delete()
    Item.objects.filter(id=items[2].id).delete()
    # and: a customer erased (personal data blanked; the events stay)
    customer_erase(customer_id=customers[15].id, by=UserFactory())

    # then: the same customers as the raw events, before and after the next refresh
    assert_same_as_raw(rng)
    summary_refresh()
    assert AudienceSummary.objects.get().watermark == Event.objects.order_by("-id").first().id
    assert_same_as_raw(rng)


def test_the_live_count_and_the_generation_query_read_the_summary(history):
    summary_refresh()
    rules = {"match": "all", "rules": [{"field": "frequency", "op": "gte", "value": 2, "days": 90}]}

    sql = str(audience_query(rules).query)
    counted = audience_count(rules)

    assert PurchaseDay._meta.db_table in sql
    assert counted["total"] == len(ids(rules, summary=False))


def test_a_fractional_count_bound_selects_whom_it_says(db):
    # given: one customer with 2 purchases, one with 3
    now = timezone.now()
    two, three = CustomerFactory(), CustomerFactory()
    for customer, times in ((two, 2), (three, 3)):
        for _ in range(times):
            EventFactory(customer=customer, occurred_at=now - timedelta(days=1))

    def frequency(op, value):
        return ids({"match": "all", "rules": [{"field": "frequency", "op": op, "value": value, "days": 30}]})

    # then: 2.5 is compared as 2.5 (the count's field once made it 2: "at least 2.5" took the customer with 2)
    assert frequency("gte", 2.5) == {three.id}
    assert frequency("gt", 2.5) == {three.id}
    assert frequency("lt", 2.5) == {two.id}
    assert frequency("lte", 2.5) == {two.id}
    assert frequency("eq", 2.5) == set()


def test_a_refresh_resumes_in_chunks(history):
    # given: a refresh that stops after its first chunk of 5 ids
    first = summary_refresh(chunk_ids=5, max_seconds=0)
    assert first.chunks == 1 and not first.caught_up

    # when it is run again to the end
    rest = summary_refresh(chunk_ids=5)

    # then: the summary is what one refresh gives
    assert rest.caught_up and rest.watermark == Event.objects.order_by("-id").first().id
    assert_same_as_raw(random.Random(3), rule_sets=20)


def test_without_a_refresh_the_rules_read_the_events(history):
    assert PurchaseSource.current() is None
    assert PurchaseDay._meta.db_table not in str(
        audience_query({"match": "all", "rules": [{"field": "frequency", "op": "gte", "value": 2, "days": 90}]}).query
    )


@pytest.mark.django_db(transaction=True)
def test_the_watermark_waits_for_an_uncommitted_write(history):
    customers, items, now = history
    summary_refresh()
    mark = AudienceSummary.objects.get().watermark
    settings = connection.settings_dict
    other = psycopg.connect(
        dbname=settings["NAME"],
        user=settings["USER"],
        host=settings["HOST"],
        port=settings["PORT"] or 5432,
        password=settings["PASSWORD"] or None,
    )
    try:
        # given: another transaction has taken an id for a purchase and not committed it
        other.execute(
            "INSERT INTO shop_event (customer_id, item_id, type, quantity, value, discount, occurred_at, source, "
            "client_event_id, received_at) VALUES (%s, %s, 'purchase', 1, 5, 0, %s, 'web', 'in-flight', now())",
            [customers[20].id, items[0].id, now - timedelta(days=3)],
        )
        EventFactory(customer=customers[21], item=items[0], occurred_at=now - timedelta(days=3))  # committed, later id

        # when: a refresh runs meanwhile
        busy = summary_refresh(wait_s=0.5)

        # then: it does not move the watermark past the id still in flight
        assert not busy.caught_up and AudienceSummary.objects.get().watermark == mark
        other.commit()
        assert summary_refresh().watermark > mark
        assert_same_as_raw(random.Random(4), rule_sets=20)
    finally:
        other.close()


def test_it_refreshes_on_beat_and_after_an_import(history, settings):
    # given: the beat entry, and the task it runs
    entries = [
        e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"] == "campaigns.tasks.purchase_summary_refresh"
    ]
    assert len(entries) == 1
    purchase_summary_refresh()
    assert AudienceSummary.objects.get().watermark == Event.objects.order_by("-id").first().id

    # when: a write of 100,000 events and one of 1,000 are announced
    events_stored.send(sender="shop", source="file", first_id=1, last_id=100_000)
    events_stored.send(sender="shop", source="api", first_id=100_001, last_id=101_000)

    # then: only the import queues a refresh of its own (the other waits for the beat)
    queued = OutboxTask.objects.filter(task="campaigns.tasks.purchase_summary_refresh")
    assert queued.count() == 1
