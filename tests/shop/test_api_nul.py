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


@pytest.mark.parametrize("escape", ["\\u0000", "\\uD800", "\\udfff"])
def test_a_refused_character_is_found_however_its_escape_is_written(api, escape):
    # given a body written by hand, the escape in upper or lower case
    body = json.dumps({"source": "web", "events": [ROW]}).replace('"c1"', f'"c{escape}1"')
    # when it is posted, then it is refused whole
    response = api.post("/api/v1/events/", body, content_type="application/json")
    assert response.status_code == 400 and not Event.objects.exists(), response.content


def test_an_escaped_backslash_before_u0000_is_text_and_stored(api):
    # given an attribute whose text is a backslash then "u0000" (no NUL in it)
    body = json.dumps({"source": "web", "events": [{**ROW, "attributes": {"note": "\\u0000"}}]})
    # when it is posted, then it is stored as written
    response = api.post("/api/v1/events/", body, content_type="application/json")
    assert response.status_code == 200, response.content
    assert Event.objects.get().attributes == {"note": "\\u0000"}


def test_a_utf16_body_with_a_nul_is_refused(api):
    # given a body in UTF-16, where the bytes of an escape are not those of UTF-8
    body = json.dumps({"source": "web", "events": [{**ROW, "customer": "c\x001"}]}).encode("utf-16")
    response = api.post("/api/v1/events/", body, content_type="application/json; charset=utf-16")
    # then it is refused, or not parsed at all, and nothing is stored
    assert response.status_code in (400, 415) and not Event.objects.exists(), response.content


def test_a_body_without_escapes_is_not_walked(api, monkeypatch):
    # given the walk of every string made to fail
    from shop.api import parsers

    monkeypatch.setattr(parsers, "_first_unstorable", lambda data: pytest.fail("walked a clean body"))
    # when a batch without any \u escape is posted, then it is stored without the walk
    response = api.post("/api/v1/events/", {"source": "web", "events": [ROW]}, format="json")
    assert response.status_code == 200 and Event.objects.count() == 1, response.content
