"""A NUL character (PostgreSQL stores none in text or jsonb) or a lone surrogate (not a character: no UTF-8 for it)
is a 400 naming the row and field, never a server error halfway through a batch."""

import json

import pytest

from shop.models import Customer, Event, Item

pytestmark = pytest.mark.django_db

ROW = {"event_id": "e1", "customer": "c1", "item": "i1", "type": "view", "occurred_at": "2026-01-02T10:00Z"}


@pytest.mark.parametrize(
    "url, body",
    [
        ("/api/v1/events/", {"source": "web", "events": [{**ROW, "event_id": "e\x001"}]}),
        ("/api/v1/events/", {"source": "web", "events": [{**ROW, "customer": "c\x001"}]}),
        ("/api/v1/events/", {"source": "web", "events": [{**ROW, "item": "i\x001"}]}),
        ("/api/v1/events/", {"source": "web", "events": [{**ROW, "attributes": {"k\x00": "v"}}]}),
        ("/api/v1/events/", {"source": "w\x00b", "events": [ROW]}),
        ("/api/v1/customers/", [{"external_id": "c\x001"}]),
        ("/api/v1/customers/", [{"external_id": "c1", "attributes": {"k": "v\x00"}}]),
        ("/api/v1/items/", [{"external_id": "i1", "title": "t", "attributes": {"k\x00": "v"}}]),
    ],
)
def test_a_nul_character_anywhere_is_refused_whole(api, url, body):
    response = api.post(url, body, format="json")

    assert response.status_code == 400, response.content
    assert "NUL" in response.json()["detail"]
    assert not (Customer.objects.exists() or Item.objects.exists() or Event.objects.exists())


def test_filtering_events_by_a_customer_id_with_a_nul_finds_none(api):
    api.post("/api/v1/events/", {"source": "web", "events": [ROW]}, format="json")

    response = api.get("/api/v1/events/", {"customer": "c1\x00"})

    assert response.status_code == 200
    assert response.json()["results"] == []


def test_a_form_body_is_refused(api):
    response = api.post("/api/v1/customers/", {"external_id": "c1"})  # multipart, as a browser form sends it

    assert response.status_code == 415
    assert not Customer.objects.exists()


@pytest.mark.parametrize(
    "field, where",
    [
        ("customer", "body.events[1].customer"),
        ("item", "body.events[1].item"),
        ("event_id", "body.events[1].event_id"),
        ("type", "body.events[1].type"),
    ],
)
def test_a_lone_surrogate_is_refused_naming_the_row_and_field(api, field, where):
    # given a batch whose second row holds "\ud800" (valid JSON, not a character)
    body = {"source": "web", "events": [ROW, {**ROW, "event_id": "e2", field: "x\ud800"}]}
    # when
    response = api.post("/api/v1/events/", json.dumps(body), content_type="application/json")
    # then
    assert response.status_code == 400, response.content
    assert response.json()["detail"].startswith(f"{where} contains a lone surrogate (\\ud800)")
    assert not Event.objects.exists()


def test_the_refusal_of_a_nul_names_where_it_is(api):
    response = api.post("/api/v1/events/", {"source": "web", "events": [ROW, {**ROW, "item": "i\x00"}]}, format="json")
    assert response.json()["detail"].startswith("body.events[1].item contains a NUL (\\u0000) character")
