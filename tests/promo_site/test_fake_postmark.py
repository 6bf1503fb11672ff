"""The fake Postmark API: anymail's own sending code must read its answers as Postmark's."""

import pytest
import requests
from anymail.exceptions import AnymailRecipientsRefused
from anymail.message import AnymailMessage
from django.core.management import CommandError, call_command
from django.test import override_settings

from promo_site.fake_postmark import FakePostmark


@pytest.fixture
def postmark(fake_postmark):
    fake_postmark.reset()
    anymail = {"POSTMARK_SERVER_TOKEN": fake_postmark.token, "POSTMARK_API_URL": fake_postmark.url}
    with override_settings(EMAIL_BACKEND="anymail.backends.postmark.EmailBackend", ANYMAIL=anymail):
        yield fake_postmark


def send(postmark, path, body, token=None):
    headers = {"X-Postmark-Server-Token": token or postmark.token, "Accept": "application/json"}
    return requests.post(postmark.url + path, json=body, headers=headers, timeout=5)


def test_anymails_postmark_backend_reads_a_single_send(postmark):
    email = AnymailMessage("Hello", "Text", "shop@example.test", ["ann@example.test"], metadata={"k": "v"})
    email.attach_alternative("<p>Hello</p>", "text/html")
    assert email.send() == 1
    record = postmark.outbox[0]
    assert email.anymail_status.status == {"sent"}
    assert email.anymail_status.message_id == record["MessageID"]
    assert (record["HtmlBody"], record["Metadata"], postmark.calls[0]["path"]) == ("<p>Hello</p>", {"k": "v"}, "/email")


def test_anymail_reads_an_invalid_recipient_as_refused(postmark):
    postmark.configure(invalid=["bad@example.test"])
    email = AnymailMessage("Hello", "Text", "shop@example.test", ["bad@example.test"])
    with pytest.raises(AnymailRecipientsRefused):
        email.send()
    assert email.anymail_status.recipients["bad@example.test"].status == "invalid"


def test_anymails_own_batch_reads_per_recipient_answers(postmark):
    # given one message to two recipients with per-recipient metadata: anymail's use of /email/batch
    postmark.configure(inactive=["gone@example.test"])
    email = AnymailMessage("Hello", "Text", "shop@example.test", ["ann@example.test", "gone@example.test"])
    email.merge_metadata = {"ann@example.test": {"n": "1"}, "gone@example.test": {"n": "2"}}
    email.send()
    statuses = {address: status.status for address, status in email.anymail_status.recipients.items()}
    assert statuses == {"ann@example.test": "sent", "gone@example.test": "rejected"}
    assert [record["Metadata"] for record in postmark.outbox] == [{"n": "1"}]


def test_it_refuses_a_wrong_token_and_malformed_requests(postmark):
    assert send(postmark, "email", {}, token="wrong").json()["ErrorCode"] == 10
    assert send(postmark, "email", {}, token="wrong").status_code == 401
    malformed = requests.post(
        postmark.url + "email/batch", data="{", headers={"X-Postmark-Server-Token": postmark.token}, timeout=5
    )
    assert (malformed.status_code, malformed.json()["ErrorCode"]) == (422, 402)
    too_many = send(postmark, "email/batch", [{}] * 501)
    assert (too_many.status_code, too_many.json()["ErrorCode"]) == (422, 410)
    no_body = send(postmark, "email", {"From": "a@example.test", "To": "b@example.test", "Subject": "s"})
    assert (no_body.status_code, no_body.json()["ErrorCode"]) == (422, 300)
    assert postmark.outbox == []


def test_seeded_failures_repeat_and_are_set_over_http(postmark):
    # given failure odds set from another process through the control endpoint
    def run():
        requests.post(postmark.url + "_fake/reset", timeout=5)
        requests.post(postmark.url + "_fake/config", json={"p_429": 0.3, "p_500": 0.2, "seed": 7}, timeout=5)
        one = {"From": "a@example.test", "To": "b@example.test", "Subject": "s", "TextBody": "t"}
        return [send(postmark, "email/batch", [one]).status_code for _ in range(30)]

    # when the same calls are made twice
    first, second = run(), run()
    # then they fail the same way each time, and only the calls answered 200 were recorded
    assert first == second
    assert {429, 500, 200} <= set(first)
    outbox = requests.get(postmark.url + "_fake/outbox", timeout=5).json()
    assert len(outbox) == first.count(200)


def test_outbound_search_filters_by_metadata_and_needs_the_token(postmark):
    one = {"From": "a@example.test", "Subject": "s", "TextBody": "t"}
    send(postmark, "email/batch", [{**one, "To": f"c{n}@example.test", "Metadata": {"id": str(n)}} for n in range(3)])
    headers = {"X-Postmark-Server-Token": postmark.token}
    url = postmark.url + "messages/outbound"
    found = requests.get(url, params={"count": 10, "offset": 0, "metadata_id": "1"}, headers=headers, timeout=5)
    assert found.json()["TotalCount"] == 1
    assert found.json()["Messages"][0]["To"] == [{"Email": "c1@example.test", "Name": None}]
    assert requests.get(url, params={"count": 10, "offset": 0}, timeout=5).status_code == 401
    assert requests.get(url, headers=headers, timeout=5).status_code == 422


def test_a_lean_outbox_keeps_no_bodies_and_still_answers_the_search_and_the_count_by_key():
    # given a fake for a benchmark of a million messages
    with FakePostmark(lean=True) as lean:
        one = {"From": "a@example.test", "Subject": "s", "TextBody": "t" * 1000, "HtmlBody": "<p>h</p>"}
        batch = [{**one, "To": f"c{n}@example.test", "Metadata": {"id": str(n % 2)}} for n in range(3)]
        # when a batch is posted
        assert send(lean, "email/batch", batch).status_code == 200
        # then it keeps no body or header, counts by key, and the search finds a message by its metadata
        assert all("TextBody" not in record and "Headers" not in record for record in lean.outbox)
        assert lean.count_by_metadata("id") == {"0": 2, "1": 1}
        headers = {"X-Postmark-Server-Token": lean.token}
        found = requests.get(
            lean.url + "messages/outbound", params={"count": 10, "offset": 0, "metadata_id": "1"}, headers=headers,
            timeout=5,
        )  # fmt: skip
        assert found.json()["Messages"][0]["To"] == [{"Email": "c1@example.test", "Name": None}]


def test_construction_rejects_unknown_options():
    with pytest.raises(ValueError):
        FakePostmark(p_timeouts=0.5)
    with pytest.raises(CommandError):
        call_command("fake_postmark", "--port", "0", "--config", '{"fail_next": ["sometimes"]}')


def test_the_outbox_is_a_page_with_search_by_address_and_each_message_with_its_headers(postmark):
    # given two messages, one with HTML that must never run a script on the page
    for to, html in (("ann@example.test", "<p>Hi <a href='http://x.test/r/1/'>Ann</a></p><script>x()</script>"),
                     ("bob@example.test", "<p>Hi Bob & co</p>")):  # fmt: skip
        email = AnymailMessage("Spring <sale>", "Hi", "shop@example.test", [to], headers={"X-Promo-Message": "7"})
        email.attach_alternative(html, "text/html")
        email.send()
    # when the list is searched by address
    page = requests.get(postmark.url + "_fake/?q=ANN@", timeout=5).text
    # then only Ann's message is listed, escaped, with a link to it
    assert page.count('class="message"') == 1 and "ann@example.test" in page and "bob@" not in page
    assert "Spring &lt;sale&gt;" in page
    ann = next(m for m in postmark.outbox if m["To"] == "ann@example.test")
    # and the message page shows the headers and the HTML in a sandboxed frame (scripts never run)
    message = requests.get(postmark.url + f"_fake/messages/{ann['MessageID']}", timeout=5)
    assert message.status_code == 200 and message.headers["Content-Type"].startswith("text/html")
    assert (
        "<th>X-Promo-Message</th><td>7</td>" in message.text
        and "<th>From</th><td>shop@example.test</td>" in message.text
    )
    assert 'sandbox="allow-popups allow-popups-to-escape-sandbox"' in message.text
    assert "<script>" not in message.text and "&lt;script&gt;x()&lt;/script&gt;" in message.text
    assert requests.get(postmark.url + "_fake/messages/nope", timeout=5).status_code == 404
    assert "No message matches" in requests.get(postmark.url + "_fake/?q=nobody", timeout=5).text
