"""campaigns.providers through anymail's real backends: Postmark against the fake server on loopback."""

import socket

import pytest
from anymail.exceptions import AnymailCancelSend
from anymail.signals import post_send, pre_send
from django.core import mail
from django.test import override_settings

from campaigns.providers import (
    NotPosted,
    OutgoingMessage,
    ProviderConfigError,
    batch_limit,
    lookup_sent,
    lookup_supported,
    send_batch,
)

POSTMARK = "anymail.backends.postmark.EmailBackend"


def postmark_settings(server, token=None, url=None, timeout=10):
    return override_settings(
        EMAIL_BACKEND=POSTMARK,
        ANYMAIL={
            "POSTMARK_SERVER_TOKEN": token or server.token,
            "POSTMARK_API_URL": url or server.url,
            "REQUESTS_TIMEOUT": timeout,
        },
    )


@pytest.fixture
def postmark(fake_postmark):
    fake_postmark.reset()
    with postmark_settings(fake_postmark):
        yield fake_postmark


def message(n, to=None):
    return OutgoingMessage(
        key=f"m{n}",
        to=to or f"customer{n}@example.test",
        subject=f"Your picks, customer {n}",
        html=f"<p>Code SAVE{n}</p>",
        text=f"Code SAVE{n}",
        headers={
            "List-Unsubscribe": f"<https://shop.example.test/u/{n}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
        tag="spring-campaign",
    )


def headers_of(record):
    return {header["Name"]: header["Value"] for header in record["Headers"]}


def test_it_sends_1200_distinct_messages_in_three_batch_calls(postmark):
    # given 1,200 messages that share nothing but their campaign
    messages = [message(n) for n in range(1200)]
    # when they are sent
    outcomes = send_batch(messages)
    # then Postmark took them in calls of 500, 500 and 200, each message as itself
    assert [call["messages"] for call in postmark.calls] == [500, 500, 200]
    assert {call["path"] for call in postmark.calls} == {"/email/batch"}
    assert [outcome.key for outcome in outcomes] == [m.key for m in messages]
    assert {outcome.status for outcome in outcomes} == {"sent"}
    recorded = {record["Metadata"]["promo_message"]: record for record in postmark.outbox}
    assert len(recorded) == 1200
    for m, outcome in zip(messages, outcomes):
        record = recorded[m.key]
        assert (record["To"], record["Subject"], record["Tag"]) == (m.to, m.subject, "spring-campaign")
        assert (record["HtmlBody"], record["TextBody"]) == (m.html, m.text)
        assert headers_of(record) == {**m.headers, "X-Promo-Message": m.key}
        assert record["MessageID"] == outcome.provider_message_id


def test_batch_limit_is_postmarks_500(postmark):
    assert batch_limit() == 500


def test_it_rejects_invalid_and_inactive_addresses_with_postmarks_reason(postmark):
    # given a provider that knows one address as invalid and one as inactive
    postmark.configure(invalid=["bad@example.test"], inactive=["gone@example.test"])
    messages = [message(1), message(2, to="bad@example.test"), message(3, to="gone@example.test"), message(4)]
    # when the batch is sent
    outcomes = send_batch(messages)
    # then those two are rejected for good with Postmark's words and the others are sent
    assert [outcome.status for outcome in outcomes] == ["sent", "rejected", "rejected", "sent"]
    assert outcomes[1].reason == "Invalid 'To' address: 'bad@example.test'."
    assert "Found inactive addresses: gone@example.test." in outcomes[2].reason
    assert sorted(record["To"] for record in postmark.outbox) == ["customer1@example.test", "customer4@example.test"]
    assert len(postmark.calls) == 1


def test_an_address_anymail_cannot_parse_never_reaches_postmark(postmark):
    outcomes = send_batch([message(1), message(2, to="not-an-address")])
    assert [outcome.status for outcome in outcomes] == ["sent", "rejected"]
    assert "not-an-address" in outcomes[1].reason
    assert [call["messages"] for call in postmark.calls] == [1]


@pytest.mark.parametrize("status", ["429", "500", "503"])
def test_a_busy_or_failing_provider_means_retry_for_the_whole_call(postmark, status):
    # given a provider that answers the next call with an HTTP error
    postmark.configure(fail_next=[status])
    # when a batch is sent
    outcomes = send_batch([message(1), message(2)])
    # then every message of the call is to be retried, saying why, and nothing was taken
    assert {outcome.status for outcome in outcomes} == {"retry"}
    assert outcomes[0].reason.startswith(f"HTTP {status} from Postmark")
    assert not any(outcome.uncertain for outcome in outcomes)  # Postmark said no: it took nothing
    assert postmark.outbox == []
    # and the next call goes through
    assert {outcome.status for outcome in send_batch([message(1), message(2)])} == {"sent"}


def test_a_timeout_means_retry_and_the_provider_took_nothing(postmark):
    postmark.configure(fail_next=["timeout"], timeout_seconds=2)
    with postmark_settings(postmark, timeout=0.3):
        outcomes = send_batch([message(1), message(2)])
    assert {outcome.status for outcome in outcomes} == {"retry"}
    assert "no answer from Postmark within 0.3 s" in outcomes[0].reason
    assert all(outcome.uncertain for outcome in outcomes)  # we cannot know that it took nothing
    assert postmark.outbox == []


def test_the_gate_runs_before_each_call_and_its_seconds_are_the_calls_timeout(postmark):
    # given a provider that takes the first call and never answers the second, and a gate that allows 0.3 s
    postmark.configure(fail_next=["ok", "timeout"], timeout_seconds=3)
    gate_calls = []

    def gate():
        gate_calls.append(len(postmark.calls))  # the calls the provider had seen when the gate ran
        return 0.3

    # when 501 messages go out (two calls) with anymail's own timeout at 10 s
    outcomes = send_batch([message(n) for n in range(501)], gate=gate)
    # then the gate ran right before each call, and the unanswered call gave up after the gate's 0.3 s
    assert gate_calls == [0, 1]
    assert [outcome.status for outcome in outcomes] == ["sent"] * 500 + ["retry"]
    assert "no answer from Postmark within 0.3 s" in outcomes[500].reason and outcomes[500].uncertain


def test_a_gate_that_refuses_stops_the_calls_and_says_what_went_before(postmark):
    # given a gate that allows the first call and refuses the second
    answers = iter([5.0])

    def gate():
        seconds = next(answers, None)
        if seconds is None:
            raise NotPosted("the claim's post deadline passed")
        return seconds

    # when 600 messages are to go out in two calls
    with pytest.raises(NotPosted) as refusal:
        send_batch([message(n) for n in range(600)], gate=gate)
    # then the second call was never made, and the refusal carries the first call's outcomes
    assert len(postmark.calls) == 1 and len(postmark.outbox) == 500
    assert [outcome.status for outcome in refusal.value.outcomes] == ["sent"] * 500


def test_a_gate_that_refuses_keeps_a_one_message_backend_from_sending():
    def gate():
        raise NotPosted("no")

    with override_settings(EMAIL_BACKEND="anymail.backends.test.EmailBackend"):
        with pytest.raises(NotPosted) as refusal:
            send_batch([message(1)], gate=gate)
    assert mail.outbox == [] and refusal.value.outcomes == []


def test_no_connection_means_retry(postmark):
    with socket.socket() as probe:  # a port nobody listens on once it is closed
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    with postmark_settings(postmark, url=f"http://127.0.0.1:{closed_port}/"):
        outcomes = send_batch([message(1)])
    assert outcomes[0].status == "retry"
    assert "no answer from Postmark" in outcomes[0].reason


def test_a_wrong_server_token_stops_sending(postmark):
    with postmark_settings(postmark, token="not-the-token"), pytest.raises(ProviderConfigError) as raised:
        send_batch([message(1), message(2)])
    assert "HTTP 401 from Postmark" in str(raised.value)
    assert [outcome.status for outcome in raised.value.outcomes] == ["retry", "retry"]
    assert postmark.outbox == []


def test_a_token_revoked_mid_run_keeps_what_was_sent(postmark):
    # given a provider that takes one call and then refuses the token
    postmark.configure(fail_next=["ok", "401"])
    messages = [message(n) for n in range(600)]
    # when 600 messages are sent
    with pytest.raises(ProviderConfigError) as raised:
        send_batch(messages)
    # then the error tells which were sent and which were never taken
    statuses = [outcome.status for outcome in raised.value.outcomes]
    assert statuses == ["sent"] * 500 + ["retry"] * 100
    assert [outcome.key for outcome in raised.value.outcomes] == [m.key for m in messages]
    assert len(postmark.outbox) == 500


def test_an_unconfirmed_sender_stops_sending_instead_of_failing_every_message(postmark):
    # given an account whose only confirmed sender is not ours
    postmark.configure(senders=["someone-else@example.test"])
    # when a batch is sent, Postmark refuses each message of it for the account's sake
    with pytest.raises(ProviderConfigError) as raised:
        send_batch([message(1), message(2)])
    # then nothing is marked failed for good: all are to be retried once the account is fixed
    assert "Postmark error 400" in str(raised.value)
    assert [outcome.status for outcome in raised.value.outcomes] == ["retry", "retry"]


def test_anymails_signals_run_for_each_message_of_a_batch(postmark):
    # given a pre_send receiver that cancels one address and a post_send one that records statuses
    seen = {}

    def suppress(sender, message, esp_name, **kwargs):
        if message.to == ["suppressed@example.test"]:
            raise AnymailCancelSend("suppressed")

    def record(sender, message, status, esp_name, **kwargs):
        seen[message.to[0]] = (status.status, status.message_id)

    pre_send.connect(suppress)
    post_send.connect(record)
    try:
        outcomes = send_batch([message(1), message(2, to="suppressed@example.test")])
    finally:
        pre_send.disconnect(suppress)
        post_send.disconnect(record)
    # then the cancelled message never went and the other was reported with its Postmark id
    assert [outcome.status for outcome in outcomes] == ["sent", "rejected"]
    assert seen == {"customer1@example.test": ({"sent"}, outcomes[0].provider_message_id)}
    assert [call["messages"] for call in postmark.calls] == [1]


def test_lookup_sent_finds_a_message_the_provider_took_before_timing_out(postmark):
    # given a provider that takes a call and then never answers it
    postmark.configure(fail_next=["accept_then_timeout"], timeout_seconds=2)
    with postmark_settings(postmark, timeout=0.3):
        outcomes = send_batch([message(1), message(2)])
    assert {outcome.status for outcome in outcomes} == {"retry"}
    # when we ask the provider about those messages
    found = lookup_sent("m2")
    # then it finds the one it sent, and nothing for a message it never took
    assert found == next(r["MessageID"] for r in postmark.outbox if r["Metadata"]["promo_message"] == "m2")
    assert lookup_sent("m-never-sent") is None
    assert lookup_supported()


def test_retrying_until_settled_sends_each_message_once(postmark):
    # given a flaky provider (seeded) that knows some addresses as invalid
    postmark.configure(invalid=["customer7@example.test"], p_429=0.2, p_500=0.1, p_timeout=0.1, seed=4)
    postmark.configure(timeout_seconds=1.5)
    pending = [message(n) for n in range(1100)]
    settled = {}
    # when whatever is to be retried is sent again, until nothing is
    with postmark_settings(postmark, timeout=1):
        for _round in range(20):
            outcomes = send_batch(pending)
            settled.update({o.key: o for o in outcomes if o.status != "retry"})
            pending = [m for m, o in zip(pending, outcomes) if o.status == "retry"]
            if not pending:
                break
    # then every message was settled, the invalid one rejected, and Postmark took each other one once
    assert pending == [] and len(settled) == 1100
    assert {key for key, o in settled.items() if o.status == "rejected"} == {"m7"}
    recorded = [record["Metadata"]["promo_message"] for record in postmark.outbox]
    assert sorted(recorded) == sorted(key for key, o in settled.items() if o.status == "sent")
    assert {call["outcome"] for call in postmark.calls} == {200, 429, 500, "timeout"}


def test_another_anymail_backend_sends_one_message_per_call():
    # given anymail's own test backend, standing for SendGrid, Mailgun, SES...
    with override_settings(EMAIL_BACKEND="anymail.backends.test.EmailBackend"):
        assert batch_limit() == 1
        # when three messages are sent
        outcomes = send_batch([message(1), message(2), message(3)])
        # then each went as its own send, with its own headers and metadata
        assert [outcome.status for outcome in outcomes] == ["sent"] * 3
        assert [outcome.provider_message_id for outcome in outcomes] == ["0", "1", "2"]
        assert [email.to for email in mail.outbox] == [[f"customer{n}@example.test"] for n in (1, 2, 3)]
        params = mail.outbox[1].anymail_test_params
        assert params["metadata"] == {"promo_message": "m2"} and params["tags"] == ["spring-campaign"]
        assert params["extra_headers"]["X-Promo-Message"] == "m2" and not params["is_batch_send"]
        assert lookup_sent("m2") is None and not lookup_supported()
