"""Sending e-mail through the provider chosen in settings, with django-anymail.

Our messages are personalised in everything (subject, HTML and text body, codes, items), so a
provider's batch API helps only when it takes completely distinct messages in one call:

- Postmark: POST /email/batch takes up to 500 distinct messages. Anymail's Postmark backend uses that
  endpoint only for one message to several recipients, so `send_batch` has anymail build each message's
  payload (`build_message_payload`: serialisation, headers, metadata, tag, server token, message
  stream), posts the list of payloads through the backend's own session, timeout and error handling
  (`post_to_esp`), and reads Postmark's answer for each message. Anymail's pre_send and post_send
  signals run for each message as they would for a single send.
- Every other backend (SendGrid, Mailgun, Amazon SES, ...): one message per API call through the
  backend's `send_messages`. Their batch APIs (SendGrid personalizations, Mailgun recipient-variables,
  SES bulk templated e-mail) substitute per-recipient variables into one shared subject and body,
  which does not fit messages that share nothing. Nor does Postmark's own bulk API: with anymail's
  POSTMARK_USE_BULK_API set, Postmark too gets one message per call.

Outcomes: "sent"; "rejected", permanent (an invalid or inactive address): never retry; "retry",
transient (HTTP 408/429/5xx, a timeout, no connection). A call that timed out or whose answer could
not be read may still have been accepted: before sending such a message again, or when sweeping
messages stuck in flight, ask `lookup_sent(key)`. A refusal of our configuration (bad server token,
unconfirmed sender, malformed request) raises ProviderConfigError: retrying would fail the same way.

A caller may pass send_batch a `gate`: called as the last step before each provider call (the messages
already built and serialised), it returns the seconds the call may take, which become its HTTP timeout
(connect, send and answer together), or raises NotPosted, and that call and the ones after it are not made.

Rate limiting is the caller's: see campaigns.ratelimit.
"""

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urljoin

import requests
import urllib3
from anymail.backends.base_requests import AnymailRequestsBackend
from anymail.backends.postmark import EmailBackend as PostmarkBackend
from anymail.exceptions import AnymailAPIError, AnymailError, AnymailRecipientsRefused, AnymailRequestsAPIError
from anymail.message import AnymailMessage, AnymailRecipientStatus, AnymailStatus
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.mail import get_connection

logger = logging.getLogger(__name__)

SENT, REJECTED, RETRY = "sent", "rejected", "retry"
POSTMARK_BATCH_LIMIT = 500
# Postmark's per-message error codes that are about the moment, not the message: try again later.
POSTMARK_TRANSIENT_CODES = {100, 429}  # maintenance, rate limit
# Per-message codes about our account or sender, not the recipient: every message would get them, so
# marking messages failed one by one would burn a whole campaign. Sending stops instead.
POSTMARK_ACCOUNT_CODES = {10, 400, 401, 405, 412, 413}
MAYBE_ACCEPTED = "it may have accepted them: ask lookup_sent before sending again"


@dataclass
class OutgoingMessage:
    key: str  # our message id: Postmark Metadata {"promo_message": key} and the header X-Promo-Message
    to: str
    subject: str
    html: str
    text: str
    headers: dict = field(default_factory=dict)  # e.g. List-Unsubscribe, List-Unsubscribe-Post
    from_email: str | None = None  # DEFAULT_FROM_EMAIL when None
    tag: str = ""  # anymail tags (Postmark Tag), e.g. the campaign


@dataclass
class SendOutcome:
    key: str
    status: str  # SENT | REJECTED (permanent, never retry) | RETRY (transient)
    provider_message_id: str = ""
    reason: str = ""
    # RETRY only: the call got no readable answer, so the provider may have taken the message. Sending it
    # again could deliver it twice: ask lookup_sent first (the sweeper does, some minutes later).
    uncertain: bool = False


class ProviderConfigError(Exception):
    """The provider refuses our configuration; sending must stop until someone fixes the settings.

    `outcomes` has one outcome per message given to send_batch, in order: what the provider did with
    those it took before the error, and "retry" for the others, which it never took.
    """

    def __init__(self, message, outcomes=()):
        super().__init__(message)
        self.outcomes = list(outcomes)


class NotPosted(Exception):
    """A send_batch caller's gate refused a call: its messages and those after it were never handed over.

    `outcomes` has the outcomes of the messages of the calls made before, in order (often none).
    """

    def __init__(self, message, outcomes=()):
        super().__init__(message)
        self.outcomes = list(outcomes)


class _CallFailed(Exception):
    """A whole provider call failed transiently; its messages are to be retried.

    `uncertain` when no readable answer came back: the provider may have taken them."""

    def __init__(self, message, uncertain=False):
        super().__init__(message)
        self.uncertain = uncertain


def batch_limit() -> int:
    """How many messages one provider call takes: 500 for Postmark, 1 for the others."""
    return POSTMARK_BATCH_LIMIT if _sends_postmark_batches(_connection()) else 1


def send_batch(messages: Sequence[OutgoingMessage], gate: Callable[[], float] | None = None) -> list[SendOutcome]:
    """Send the messages in calls of batch_limit() and return one outcome per message, in order.

    `gate()`, when given, runs right before each call: it returns the call's timeout in seconds, or raises
    NotPosted (which send_batch raises on, with the outcomes of the calls already made).
    """
    messages, outcomes = list(messages), []
    try:
        _send_in_calls(messages, outcomes, gate)
    except NotPosted as refusal:
        refusal.outcomes = list(outcomes)
        raise
    except ProviderConfigError as error:
        settled = outcomes + error.outcomes  # the calls before, and the failed call's own account
        untaken = messages[len(settled) :]
        error.outcomes = settled + [SendOutcome(m.key, RETRY, reason=str(error)) for m in untaken]
        raise
    return outcomes


def lookup_supported() -> bool:
    """Whether lookup_sent can tell a message the provider took from one it never got (Postmark only)."""
    return isinstance(_connection(), PostmarkBackend)


def lookup_sent(key: str) -> str | None:
    """The provider's message id of a message we may have sent, or None when the provider has none.

    Postmark: its outbound-message search by our metadata. Other providers have no search we use, so
    this returns None and the sweeper must treat such a message as unknown rather than unsent. Postmark
    indexes a message for search a little after accepting it, so ask about calls some minutes old.
    Failures of the search itself raise (AnymailRequestsAPIError, ProviderConfigError), never None.
    """
    connection = _connection()
    if not isinstance(connection, PostmarkBackend):
        return None
    found = _search_postmark(connection, {"count": 1, "offset": 0, "metadata_promo_message": key})
    if found.get("TotalCount", 0) > 1:
        logger.warning("Postmark has %s messages for promo message %s", found["TotalCount"], key)
    messages = found.get("Messages") or []
    return messages[0]["MessageID"] if messages else None


# --- building messages ---------------------------------------------------------


def _send_in_calls(messages, outcomes, gate):
    """Append each message's outcome to `outcomes`, one provider call at a time."""
    connection = _connection()
    batches = _sends_postmark_batches(connection)
    limit = POSTMARK_BATCH_LIMIT if batches else 1
    with connection:  # one HTTP session for all the calls
        for start in range(0, len(messages), limit):
            chunk = messages[start : start + limit]
            if batches:
                outcomes += _send_postmark_batch(connection, chunk, gate)
            else:
                outcomes.append(_send_one(connection, chunk[0], gate))


def _call_timeout(connection, gate):
    """The next call's timeout: the backend's own (anymail's REQUESTS_TIMEOUT), cut to what the gate allows,
    and for the whole call: connecting, sending the request and reading the answer together."""
    allowed = gate() if gate is not None else None  # raises NotPosted: the call is not made
    if not isinstance(connection, AnymailRequestsBackend):
        return None  # an SMTP or SDK backend keeps its own timeout (SES's boto3, Django's SMTP)
    configured = connection.timeout
    if allowed is None:
        return configured
    if isinstance(configured, tuple):  # (connect, read)
        connect, read = (allowed if part is None else min(part, allowed) for part in configured)
    else:
        connect = read = allowed if configured is None else min(configured, allowed)
    return urllib3.Timeout(connect=connect, read=read, total=allowed)


def _seconds(timeout):
    seconds = timeout.total if isinstance(timeout, urllib3.Timeout) else timeout
    return f"{seconds:.3g} s" if isinstance(seconds, int | float) else str(seconds)


def _connection():
    try:
        return get_connection()
    except ImproperlyConfigured as error:  # anymail's AnymailConfigurationError, e.g. no server token
        raise ProviderConfigError(str(error)) from error


def _sends_postmark_batches(connection):
    return isinstance(connection, PostmarkBackend) and not connection.use_bulk_api


def _email(message):
    email = AnymailMessage(
        subject=message.subject,
        body=message.text,
        from_email=message.from_email or settings.DEFAULT_FROM_EMAIL,
        to=[message.to],
        headers={**message.headers, "X-Promo-Message": message.key},
        metadata={"promo_message": message.key},
        tags=[message.tag] if message.tag else [],
    )
    if message.html:
        email.attach_alternative(message.html, "text/html")
    return email


def _one_line(error, limit=500):
    return re.sub(r"\s+", " ", str(error)).strip()[:limit]


# --- Postmark: distinct messages in one call -----------------------------------


class _PostmarkBatchPayload:
    """The request for POST /email/batch: anymail's payloads of the messages, as one JSON list, serialised
    when made (before the gate: after it, only the HTTP request is left to do)."""

    def __init__(self, payloads, api_url):
        self.params = payloads[0].get_request_params(api_url)  # headers, server token
        self.params["url"] = urljoin(api_url, "email/batch")
        self.params["data"] = payloads[0].serialize_json([payload.data for payload in payloads])
        self.timeout = None

    def get_request_params(self, api_url):
        params = dict(self.params)
        if self.timeout is not None:
            params["timeout"] = self.timeout
        return params


def _send_postmark_batch(connection, messages, gate):
    emails = [_email(message) for message in messages]
    outcomes, payloads = {}, {}
    for index, email in enumerate(emails):
        try:
            payloads[index] = _postmark_payload(connection, email)
        except AnymailError as error:  # e.g. an address anymail cannot parse: never reaches Postmark
            outcomes[index] = SendOutcome(messages[index].key, REJECTED, reason=_one_line(error.args[0]))
    account_error = None
    if payloads:
        posted, account_error = _post_and_read(connection, payloads, messages, emails, gate)
        outcomes.update(posted)
    ordered = [outcomes[index] for index in range(len(messages))]
    if account_error:
        raise ProviderConfigError(account_error, ordered)
    return ordered


def _post_and_read(connection, payloads, messages, emails, gate):
    """Post the payloads (by index in `messages`) in one call: the outcome of each, and the first error
    about our account or sender, if Postmark answered one."""
    try:
        response = _post_postmark_batch(connection, list(payloads.values()), gate)
        answers = dict(zip(payloads, _postmark_answers(connection, response, len(payloads))))
    except _CallFailed as failure:
        return {
            index: SendOutcome(messages[index].key, RETRY, reason=str(failure), uncertain=failure.uncertain)
            for index in payloads
        }, None
    outcomes = {index: _postmark_outcome(messages[index], answer) for index, answer in answers.items()}
    for index, outcome in outcomes.items():
        _run_post_send(connection, emails[index], outcome, response)
    blocked = [answer for answer in answers.values() if answer.get("ErrorCode") in POSTMARK_ACCOUNT_CODES]
    account_error = f"Postmark error {blocked[0]['ErrorCode']}: {blocked[0].get('Message', '')}" if blocked else None
    return outcomes, account_error


def _postmark_payload(connection, email):
    email.anymail_status = AnymailStatus()
    if not connection.run_pre_send(email):
        raise AnymailError("cancelled by an anymail pre_send receiver")
    return connection.build_message_payload(email, connection.send_defaults)


def _post_postmark_batch(connection, payloads, gate):
    batch = _PostmarkBatchPayload(payloads, connection.api_url)
    batch.timeout = _call_timeout(connection, gate)  # the gate: nothing but the HTTP request comes after it
    try:
        response = connection.post_to_esp(batch, None)
    except AnymailRequestsAPIError as error:
        if error.status_code is None:  # no answer: anymail wraps the requests exception
            raise _CallFailed(_no_answer(connection, error, batch.timeout), uncertain=True) from error
        response = error.response
    if response.status_code in (408, 429) or response.status_code >= 500:
        raise _CallFailed(f"HTTP {response.status_code} from Postmark: {_postmark_message(response)}")
    if not 200 <= response.status_code < 300:  # 401 bad token, 422 malformed request, ...
        raise ProviderConfigError(f"HTTP {response.status_code} from Postmark: {_postmark_message(response)}")
    return response


def _no_answer(connection, error, timeout):
    # Without an answer we cannot tell whether the request got through before the connection failed.
    if isinstance(error, requests.Timeout):
        return f"no answer from Postmark within {_seconds(timeout)} ({MAYBE_ACCEPTED})"
    cause = _one_line(error.__cause__ or error, 200)
    return f"no answer from Postmark at {connection.api_url}: {cause} ({MAYBE_ACCEPTED})"


def _postmark_message(response):
    try:
        return str(response.json().get("Message", ""))
    except (ValueError, AttributeError):
        return _one_line(response.text, 200)


def _postmark_answers(connection, response, expected):
    try:
        answers = connection.deserialize_json_response(response, None, None)
    except AnymailAPIError as error:
        raise _CallFailed(f"unreadable answer from Postmark ({MAYBE_ACCEPTED})", uncertain=True) from error
    readable = isinstance(answers, list) and len(answers) == expected
    if not readable or not all(isinstance(a, dict) and ("MessageID" in a or a.get("ErrorCode")) for a in answers):
        raise _CallFailed(f"unexpected answer from Postmark ({MAYBE_ACCEPTED})", uncertain=True)
    return answers


def _postmark_outcome(message, answer):
    code, text = answer.get("ErrorCode", 0), str(answer.get("Message", ""))
    if code == 0 and "inactive addresses" not in text:
        return SendOutcome(message.key, SENT, provider_message_id=str(answer["MessageID"]))
    if code in POSTMARK_TRANSIENT_CODES or code in POSTMARK_ACCOUNT_CODES:
        return SendOutcome(message.key, RETRY, reason=f"Postmark error {code}: {text}")
    return SendOutcome(message.key, REJECTED, reason=text)  # 300 invalid address, 406 inactive, ...


def _run_post_send(connection, email, outcome, response):
    if outcome.status == RETRY:
        return
    status = "sent" if outcome.status == SENT else "rejected"
    email.anymail_status.esp_response = response
    email.anymail_status.set_recipient_status(
        {email.to[0]: AnymailRecipientStatus(message_id=outcome.provider_message_id or None, status=status)}
    )
    connection.run_post_send(email)


def _search_postmark(connection, query):
    session = connection.create_session()
    headers = {"Accept": "application/json", "X-Postmark-Server-Token": connection.server_token}
    url = urljoin(connection.api_url, "messages/outbound")
    try:
        response = session.get(url, params=query, headers=headers, timeout=connection.timeout)
    except requests.RequestException as error:
        raise AnymailRequestsAPIError(f"Error searching {url}", backend=connection) from error
    finally:
        session.close()
    if response.status_code in (401, 422):
        raise ProviderConfigError(f"HTTP {response.status_code} from Postmark: {_postmark_message(response)}")
    if not 200 <= response.status_code < 300:
        raise AnymailRequestsAPIError(response=response, backend=connection)
    return connection.deserialize_json_response(response, None, None)


# --- every other backend: one message per call -----------------------------------


def _send_one(connection, message, gate):
    email = _email(message)
    timeout = _call_timeout(connection, gate)  # anymail builds this one message's payload after it
    if timeout is not None:
        connection.timeout = timeout
    try:
        if not connection.send_messages([email]):
            return SendOutcome(message.key, REJECTED, reason="not sent: cancelled by a pre_send receiver")
    except AnymailRecipientsRefused as error:
        return SendOutcome(message.key, REJECTED, reason=_one_line(error))
    except AnymailAPIError as error:
        return _api_error_outcome(message, error)
    except AnymailError as error:  # invalid address, unsupported feature, unserialisable data
        return SendOutcome(message.key, REJECTED, reason=_one_line(error))
    status = getattr(email, "anymail_status", None)
    message_id = status.message_id if status is not None and status.message_id is not None else ""
    return SendOutcome(message.key, SENT, provider_message_id=str(message_id))


def _api_error_outcome(message, error):
    status = error.status_code
    reason = _one_line(error)
    if status in (401, 403):
        raise ProviderConfigError(reason, [SendOutcome(message.key, RETRY, reason=reason)]) from error
    # No status: no answer (a timeout, no connection) or an SDK's error (SES/boto); either way the
    # provider may have taken the message. The caller's retry policy bounds how often a permanent one
    # of those is tried again.
    if status is None:
        return SendOutcome(message.key, RETRY, reason=reason, uncertain=True)
    if status in (408, 429) or status >= 500:
        return SendOutcome(message.key, RETRY, reason=reason)
    return SendOutcome(message.key, REJECTED, reason=reason)
