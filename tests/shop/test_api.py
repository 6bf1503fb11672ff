import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from shop.models import Customer, Event, Item
from tests.factories import CustomerFactory, ItemFactory

pytestmark = pytest.mark.django_db

EVENTS = "/api/v1/events/"


def event(n, **overrides):
    row = {
        "event_id": f"e{n}",
        "customer": "c1",
        "item": "i1",
        "type": "purchase",
        "occurred_at": "2026-01-02T10:00:00Z",
        "quantity": 1,
        "value": "9.99",
    }
    row.update(overrides)
    return row


def post_events(api, events, **body):
    return api.post(EVENTS, {"source": "web", "events": events, **body}, format="json")


def test_it_stores_a_batch_and_reports_counts(api):
    # given a batch naming a customer and an item we have never seen
    # when it is posted
    response = post_events(api, [event(1), event(2, type="view", value=None)])
    # then both are stored and the unknowns were created as stubs
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["received"], body["stored"], body["duplicates"], body["rejected"]) == (2, 2, 0, [])
    assert (body["customers_created"], body["items_created"]) == (1, 1)
    assert Customer.objects.get(external_id="c1").is_stub
    stored = Event.objects.get(client_event_id="e1")
    assert str(stored.value) == "9.99" and stored.source == "web" and stored.item.external_id == "i1"


def test_it_stores_a_retried_batch_once(api):
    post_events(api, [event(1), event(2)])
    response = post_events(api, [event(1), event(2), event(3)])
    assert response.json()["stored"] == 1
    assert response.json()["duplicates"] == 2
    assert Event.objects.count() == 3


def test_the_same_event_id_from_another_source_is_another_event(api):
    post_events(api, [event(1)])
    api.post(EVENTS, {"source": "pos", "events": [event(1)]}, format="json")
    assert Event.objects.count() == 2


def test_it_rejects_bad_rows_and_stores_the_rest(api):
    events = [
        event(1),
        event(2, customer=""),
        event(3, occurred_at="yesterday-ish"),
        event(4, quantity=-2),
        event(5, quantity="three"),
        event(6, type="teleport"),
        event(7, item=None, type="cart"),
        event(8, value=[1, 2]),
        event(9, attributes=["not", "an", "object"]),
        {"customer": "c1", "type": "view", "item": "i1", "occurred_at": "2026-01-02"},
        event(10, attributes="text"),
        event(11, customer={"id": 1}),
        event(12, item="x" * 65),
    ]
    body = post_events(api, events).json()
    assert body["stored"] == 1
    reasons = {row["row"]: [(e["field"], e["reason"]) for e in row["errors"]] for row in body["rejected"]}
    assert reasons == {
        1: [("customer", "missing customer")],
        2: [("occurred_at", "unparseable date")],
        3: [("quantity", "negative quantity")],
        4: [("quantity", "quantity is not a whole number")],
        5: [("type", "unknown event type (expected one of: view, cart, purchase, coupon_redemption, not_interested)")],
        6: [("item", "missing item (required for this event type)")],
        7: [("value", "value is not a number")],
        8: [("attributes", "attributes must be an object")],
        9: [("event_id", "missing event id")],
        10: [("attributes", "attributes must be an object")],
        11: [("customer", "customer must be a single value, not dict")],
        12: [("item", "item id longer than 64 characters")],
    }
    assert body["rejected"][0]["event_id"] == "e2"


def test_on_unknown_reject_rejects_rows_naming_unknown_ids(api):
    CustomerFactory(external_id="known")
    ItemFactory(external_id="sku")
    body = post_events(
        api,
        [
            event(1, customer="known", item="sku"),
            event(2, customer="stranger", item="sku"),
            event(3, customer="known", item="nope"),
        ],
        on_unknown="reject",
    ).json()
    assert body["stored"] == 1
    assert [(r["row"], r["errors"][0]["reason"]) for r in body["rejected"]] == [
        (1, "unknown customer"),
        (2, "unknown item"),
    ]
    assert not Customer.objects.filter(external_id="stranger").exists()
    assert not Item.objects.filter(external_id="nope").exists()


def test_it_rejects_events_dated_outside_the_admitted_window(api, settings):
    settings.EVENT_MAX_FUTURE_DAYS = 2
    body = post_events(api, [event(1, occurred_at="2999-01-01T00:00:00Z"), event(2, occurred_at="0774-05-05")]).json()
    assert body["stored"] == 0
    assert [(r["row"], e["field"], e["value"], e["reason"]) for r in body["rejected"] for e in r["errors"]] == [
        (0, "occurred_at", "2999-01-01T00:00:00Z", "date more than 2 days in the future"),
        (1, "occurred_at", "0774-05-05", "date before 2000-01-01"),
    ]


def test_it_rejects_a_decimal_comma_and_a_negative_value_but_takes_json_numbers(api):
    events = [event(1, value="1,5"), event(2, value=-3), event(3, value=1e-7), event(4, value=2.5)]
    body = post_events(api, events).json()
    assert [(r["row"], e["field"], e["reason"]) for r in body["rejected"] for e in r["errors"]] == [
        (0, "value", "value has a decimal comma (write 1.5, not 1,5)"),
        (1, "value", "negative value"),
    ]
    assert sorted(str(v) for v in Event.objects.values_list("value", flat=True)) == ["0.00", "2.50"]


def test_a_coupon_redemption_needs_no_item(api):
    body = post_events(api, [event(1, type="coupon_redemption", item=None, attributes={"code": "SAVE10"})]).json()
    assert body["stored"] == 1
    assert Event.objects.get().attributes == {"code": "SAVE10"}


@pytest.mark.parametrize(
    "payload, message",
    [
        ([], "expected a JSON object"),
        ({"events": []}, "source"),
        ({"source": "web"}, "expected a JSON array of events"),
        ({"source": "web", "events": {"a": 1}}, "expected a JSON array of events"),
        ({"source": "web", "events": [1, 2]}, "events[0] is not an object"),
        ({"source": "web", "events": [], "on_unknown": "ignore"}, "on_unknown"),
    ],
)
def test_it_rejects_a_malformed_batch_whole(api, payload, message):
    response = api.post(EVENTS, payload, format="json")
    assert response.status_code == 400
    assert message in str(response.json())
    assert Event.objects.count() == 0


@override_settings(API_MAX_BATCH=5)
def test_it_rejects_a_batch_over_the_limit(api):
    response = post_events(api, [event(n) for n in range(6)])
    assert response.status_code == 400
    assert "at most 5 events per request, got 6" in response.json()["detail"]
    assert Event.objects.count() == 0


def test_it_refuses_requests_without_a_token(db):
    response = APIClient().post(EVENTS, {"source": "web", "events": [event(1)]}, format="json")
    assert response.status_code == 401
    assert Event.objects.count() == 0


def test_it_refuses_a_wrong_token(db):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert client.get(EVENTS).status_code == 401


@override_settings(API_THROTTLE_RATE="3/min")
def test_it_throttles_per_token(api, approver):
    from rest_framework.authtoken.models import Token

    assert [api.get(EVENTS).status_code for _ in range(4)] == [200, 200, 200, 429]
    # another token has its own budget
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=approver).key}")
    assert other.get(EVENTS).status_code == 200


def test_customers_upsert_creates_updates_and_rejects_per_row(api):
    CustomerFactory(external_id="c1", name="Old Name", email="old@example.test")
    response = api.post(
        "/api/v1/customers/",
        [
            {"external_id": "c1", "name": "New Name"},
            {"external_id": "c2", "email": "c2@example.test", "marketing_consent": True, "time_zone": "Europe/Berlin"},
            {"external_id": "c3", "email": "not-an-email"},
            {"external_id": "c4", "time_zone": "Mars/Olympus"},
            {"name": "no id"},
        ],
        format="json",
    )
    body = response.json()
    assert (body["created"], body["updated"]) == (1, 1)
    assert [(r["row"], sorted(r["errors"])) for r in body["rejected"]] == [
        (2, ["email"]),
        (3, ["time_zone"]),
        (4, ["external_id"]),
    ]
    c1 = Customer.objects.get(external_id="c1")
    assert (c1.name, c1.email) == ("New Name", "old@example.test")  # a row changes only what it names
    c2 = Customer.objects.get(external_id="c2")
    assert c2.marketing_consent and c2.consent_at is not None and c2.time_zone == "Europe/Berlin"


def test_an_upsert_fills_in_a_stub(api):
    post_events(api, [event(1)])
    api.post(
        "/api/v1/items/",
        [{"external_id": "i1", "title": "Night cream", "price": "12.50", "cost": "5.00"}],
        format="json",
    )
    item = Item.objects.get(external_id="i1")
    assert not item.is_stub and item.title == "Night cream" and item.margin == 7.5


def test_lists_are_paginated(api):
    ItemFactory.create_batch(3)
    body = api.get("/api/v1/items/").json()
    assert body["count"] == 3 and len(body["results"]) == 3 and "next" in body


@pytest.mark.parametrize("url", ["/api/v1/schema/", "/api/v1/docs/"])
def test_the_schema_and_docs_are_for_signed_in_staff_only(client, outsider, url):
    anonymous = client.get(url)
    client.force_login(outsider)
    not_staff = client.get(url)

    for response in (anonymous, not_staff):
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/?next=")


def test_the_schema_and_docs_are_served(client, analyst):
    client.force_login(analyst)
    schema = client.get("/api/v1/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/events/" in schema.content and b"on_unknown" in schema.content
    docs = client.get("/api/v1/docs/")
    assert docs.status_code == 200
    # Swagger UI comes from our own static files, not from a CDN the host may not reach
    assert b"drf_spectacular_sidecar/swagger-ui-dist" in docs.content and b"cdn.jsdelivr" not in docs.content


def test_an_id_repeated_in_one_upsert_batch_merges_its_rows(api):
    response = api.post(
        "/api/v1/items/",
        [{"external_id": "i9", "title": "Old", "price": "1.00"}, {"external_id": "i9", "title": "New"}],
        format="json",
    )
    assert (response.json()["created"], response.json()["updated"]) == (1, 0)
    item = Item.objects.get(external_id="i9")
    assert (item.title, str(item.price)) == ("New", "1.00")


def test_it_stores_an_order_id_and_lists_it(api):
    # given two lines of one order and one event naming no order
    events = [event(1, order="o-7"), event(2, item="i2", order="o-7"), event(3, type="view", value=None)]
    # when they are posted
    response = post_events(api, events)
    # then the order id is stored where given, and None elsewhere
    assert response.status_code == 200, response.content
    assert dict(Event.objects.values_list("client_event_id", "order_id")) == {"e1": "o-7", "e2": "o-7", "e3": None}
    listed = {row["event_id"]: row["order"] for row in api.get(EVENTS).json()["results"]}
    assert listed == {"e1": "o-7", "e2": "o-7", "e3": None}


def test_it_rejects_an_order_id_too_long_or_not_a_single_value(api):
    events = [event(1, order="x" * 129), event(2, order={"id": 1}), event(3, order=12345)]
    body = post_events(api, events).json()
    assert body["stored"] == 1
    reasons = {row["row"]: [e["reason"] for e in row["errors"] if e["field"] == "order"] for row in body["rejected"]}
    assert reasons == {0: ["order id longer than 128 characters"], 1: ["order must be a single value, not dict"]}
    assert Event.objects.get().order_id == "12345"


def test_events_page_by_a_cursor_without_counting_the_table(api):
    # given more events than a page holds, for two customers
    post_events(api, [event(n, customer="c1" if n % 3 else "c2") for n in range(250)])
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    # when every page is read, following `next`
    seen, url = [], EVENTS
    with CaptureQueriesContext(connection) as queries:
        while url:
            body = api.get(url).json()
            seen += [row["event_id"] for row in body["results"]]
            url = body["next"]
    # then each event comes once, most recently stored first, and no page counted the events table
    assert seen == [f"e{n}" for n in reversed(range(250))]
    assert not [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]
    # and the customer filter pages the same way
    only_c2 = api.get(EVENTS, {"customer": "c2"}).json()["results"]
    assert [row["event_id"] for row in only_c2] == [f"e{n}" for n in reversed(range(250)) if n % 3 == 0]
