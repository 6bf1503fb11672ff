"""A fake Postmark API on loopback, for tests and development (stdlib only).

It speaks Postmark's HTTP API as django-anymail and campaigns.providers use it:

- POST /email and POST /email/batch (up to 500 distinct messages) with the header
  X-Postmark-Server-Token; answers in Postmark's shapes: {"To", "SubmittedAt", "MessageID",
  "ErrorCode", "Message"}, an array of those for a batch, where a refused message is
  {"ErrorCode", "Message"} and the rest of the batch is accepted. A refused single message is HTTP 422;
  a request that is not JSON, not the right shape or too big is 422; a wrong token is 401 (ErrorCode 10).
- GET /messages/outbound?count=N&offset=M[&recipient=..][&tag=..][&metadata_<key>=<value>]: the
  outbound-message search, newest first: {"TotalCount": n, "Messages": [...]}.

Every accepted message is recorded in an outbox (`lean=True`: without its bodies and headers, for benchmarks
of a million messages; `count_by_metadata(key)` counts them by our key without copying any). The error texts
for invalid and inactive addresses are Postmark's; others only mimic them.

Failure injection, set at construction, with `configure()`, or over HTTP from another process:

    POST /_fake/config  {"invalid": ["bad@example.test"], "inactive": [...], "p_429": 0.1,
                         "p_500": 0.05, "p_timeout": 0.05, "timeout_seconds": 5, "seed": 1,
                         "fail_next": ["429", "500", "timeout", "ok"], "accept_then_timeout": false,
                         "senders": ["shop@example.test"]}
    GET  /_fake/config, GET /_fake/outbox, GET /_fake/calls, POST /_fake/reset

The outbox as pages for a person: GET /_fake/ (search by address) and GET /_fake/messages/<MessageID>
(promo_site/fake_postmark_pages.py).

`fail_next` is a queue of failures for the next send calls ("ok" for none, an HTTP status such as
"429", "500" or "401", "timeout", "accept_then_timeout"); once it is empty, failures are drawn from
p_429 / p_500 / p_timeout with a generator seeded by `seed`, so a run is reproducible. Failures
apply to the send endpoints only, after the token check. `senders`, when not empty, lists the
confirmed sender signatures: a message from any other address gets Postmark's ErrorCode 400, an error
about the account that every message of a campaign would meet.

Two kinds of timeout. "timeout" stalls for timeout_seconds without recording anything and then
closes the connection unanswered: the provider never took the call. A real provider can also
accept a call and then fail to answer in time (a lost response, a proxy timing out): that is
"accept_then_timeout" (one call through fail_next, or every call while the option is true), which
records the messages first and then stalls. The client cannot tell the two apart; this second case
is the one a sweeper must resolve by searching the provider's outbound messages.

Control endpoints need no token: this server is for loopback only.

Given a `webhooks` sender (promo_site/fake_postmark_webhooks.py; `manage.py fake_postmark --webhooks URL`,
which `run_stack` uses in demo mode), it also reports what happens to each accepted message: delivery,
bounce, spam complaint, open and click webhooks to the product's tracking endpoint.
"""

import json
import logging
import random
import threading
import uuid
from collections import Counter, deque
from datetime import UTC, datetime
from email.utils import getaddresses
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from promo_site import fake_postmark_pages as pages

logger = logging.getLogger(__name__)

DEFAULT_TOKEN = "POSTMARK_API_TEST"
BATCH_LIMIT = 500
DEFAULT_CONFIG = {
    "invalid": [],
    "inactive": [],
    "p_429": 0.0,
    "p_500": 0.0,
    "p_timeout": 0.0,
    "timeout_seconds": 5.0,
    "seed": None,
    "fail_next": [],
    "accept_then_timeout": False,
    "senders": [],
}
INACTIVE_TAIL = (
    "Inactive recipients are ones that have generated a hard bounce, a spam complaint, or a manual suppression."
)
STATUS_MESSAGES = {
    401: (10, "Request does not contain a valid Server token."),
    429: (429, "Rate limit exceeded. Please slow down."),
    500: (0, "Internal server error."),
}


class FakePostmark:
    """The server and its state. Binds at construction, so `url` is known before `start()`."""

    def __init__(self, *, host="127.0.0.1", port=0, token=DEFAULT_TOKEN, webhooks=None, lean=False, **config):
        self.token = token
        # True: the outbox keeps of each message what the outbound search reads (sender, recipient, subject, tag,
        # metadata, id, time), not its bodies and headers, so that a benchmark of a million messages
        # (bench/stage_sending.py) does not hold gigabytes.
        self.lean = lean
        # A WebhookSender (promo_site/fake_postmark_webhooks.py) reports on every accepted message, or None.
        self.webhooks = webhooks
        self._initial = _checked_config({**DEFAULT_CONFIG, **config})
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = None
        self.reset()
        self._server = ThreadingHTTPServer((host, port), _Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False  # a stalled "timeout" call must not hold up stop()
        self._server.fake = self

    @property
    def url(self):
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self):
        self._start_webhooks()
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-postmark", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self):
        self._start_webhooks()
        self._server.serve_forever()

    def _start_webhooks(self):
        if self.webhooks is not None:
            self.webhooks.start()

    def stop(self):
        self._stopping.set()
        if self.webhooks is not None:
            self.webhooks.stop()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    # --- state -----------------------------------------------------------------

    def configure(self, **options):
        """Change failure injection; `fail_next` replaces the queue, `seed` restarts the generator."""
        with self._lock:
            self._config.update(_checked_config(options))
            if "fail_next" in options:
                self._fail_next = deque(self._config["fail_next"])
            if "seed" in options:
                self._random = random.Random(self._config["seed"])
            return self._config_view()

    def reset(self):
        """Clear the outbox and the call log, and go back to the configuration given at construction."""
        with self._lock:
            self._config = dict(self._initial)
            self._fail_next = deque(self._config["fail_next"])
            self._random = random.Random(self._config["seed"])
            self._outbox = []
            self._calls = []

    @property
    def outbox(self):
        with self._lock:
            return [dict(message) for message in self._outbox]

    def count_by_metadata(self, key):
        """How many accepted messages carry each value of metadata `key` (e.g. our promo_message key): a count
        that copies no message, for outboxes of a million."""
        with self._lock:
            return Counter(message["Metadata"].get(key) for message in self._outbox)

    @property
    def calls(self):
        """Every send call: {"path", "messages" (a count, None when failed unread), "outcome"}."""
        with self._lock:
            return [dict(call) for call in self._calls]

    def _config_view(self):
        return {**self._config, "fail_next": list(self._fail_next)}

    def _next_failure(self):
        with self._lock:
            if self._fail_next:
                failure = self._fail_next.popleft()
                return None if failure == "ok" else failure
            if self._config["accept_then_timeout"]:
                return "accept_then_timeout"
            draw, threshold = self._random.random(), 0.0
            for failure in ("429", "500", "timeout"):
                threshold += self._config[f"p_{failure}"]
                if draw < threshold:
                    return failure
            return None

    def _log_call(self, path, messages, outcome):
        with self._lock:
            self._calls.append({"path": path, "messages": messages, "outcome": outcome})
        count = "unread" if messages is None else f"{messages} message(s)"
        logger.info("fake Postmark: %s, %s -> %s", path, count, outcome)

    def _stall(self):
        self._stopping.wait(self._config["timeout_seconds"])

    # --- one message ---------------------------------------------------------------

    def _take(self, message):
        """Postmark's answer to one message of a call, recording it when accepted."""
        refusal = self._refusal(message)
        if refusal:
            return {"ErrorCode": refusal[0], "Message": refusal[1]}
        record = _record(message, self.lean)
        inactive = [a for a in _addresses(message["To"]) if a.lower() in self._config["inactive"]]
        with self._lock:
            self._outbox.append(record)
        if self.webhooks is not None and not inactive:
            self.webhooks.message_accepted(record)
        text = "OK"
        if inactive:
            text = f"Message OK, but will not deliver to these inactive addresses: {', '.join(inactive)}. "
            text += INACTIVE_TAIL
        return {
            "To": record["To"],
            "SubmittedAt": record["SubmittedAt"],
            "MessageID": record["MessageID"],
            "ErrorCode": 0,
            "Message": text,
        }

    def _refusal(self, message):
        if not isinstance(message, dict):
            return 403, "Incompatible JSON input."
        sender = str(message.get("From") or "").strip()
        if not sender:
            return 300, "Invalid 'From' address: ''."
        if self._config["senders"] and (_addresses(sender) or [sender])[0].lower() not in self._config["senders"]:
            return 400, (
                f"The 'From' address you supplied ({sender}) is not a Sender Signature on your account. "
                "Please add and confirm this address in order to be able to use it in the 'From' field "
                "of your messages."
            )
        if not isinstance(message.get("Subject"), str):
            return 300, "Invalid 'Subject': a message needs a subject."
        if not message.get("HtmlBody") and not message.get("TextBody"):
            return 300, "Provide either email TextBody or HtmlBody or both."
        recipients = _addresses(message.get("To") or "")
        if not recipients:
            return 300, "Zero recipients specified"
        for address in recipients:
            if not _looks_valid(address) or address.lower() in self._config["invalid"]:
                return 300, f"Invalid 'To' address: '{address}'."
        inactive = [a for a in recipients if a.lower() in self._config["inactive"]]
        if len(inactive) == len(recipients):
            return 406, (
                "You tried to send to recipient(s) that have been marked as inactive. "
                f"Found inactive addresses: {', '.join(inactive)}. {INACTIVE_TAIL}"
            )
        return None

    # --- outbound search ----------------------------------------------------------

    def _search(self, query):
        try:
            count, offset = int(query["count"][0]), int(query["offset"][0])
        except (KeyError, ValueError):
            return None
        if not 0 < count <= BATCH_LIMIT or offset < 0:
            return None
        found = [m for m in reversed(self.outbox) if _matches(m, query)]
        return {"TotalCount": len(found), "Messages": [_summary(m) for m in found[offset : offset + count]]}


def _checked_config(options):
    unknown = set(options) - set(DEFAULT_CONFIG)
    if unknown:
        raise ValueError(f"unknown fake Postmark option(s): {', '.join(sorted(unknown))}")
    checked = dict(options)
    for key in ("invalid", "inactive", "senders"):
        if key in checked:
            checked[key] = [address.lower() for address in checked[key]]
    for key in ("p_429", "p_500", "p_timeout", "timeout_seconds"):
        if key in checked:
            checked[key] = float(checked[key])
    if "fail_next" in checked:
        checked["fail_next"] = [str(failure) for failure in checked["fail_next"]]
        for failure in checked["fail_next"]:
            if failure not in ("ok", "timeout", "accept_then_timeout") and not _is_http_error(failure):
                raise ValueError(f"fail_next: {failure!r} is not ok, timeout, accept_then_timeout or a 4xx/5xx")
    return checked


def _is_http_error(failure):
    return failure.isdigit() and 400 <= int(failure) <= 599


def _addresses(field):
    return [address for _name, address in getaddresses([str(field)]) if address]


def _looks_valid(address):
    local, _, domain = address.rpartition("@")
    return bool(local) and "." in domain and " " not in address


def _record(message, lean=False):
    keys = ("From", "To", "Subject", "Tag") if lean else ("From", "To", "Cc", "Bcc", "Subject", "HtmlBody",
                                                          "TextBody", "Tag", "ReplyTo")  # fmt: skip
    record = {key: message.get(key, "") for key in keys}
    if not lean:
        record["Headers"] = message.get("Headers") or []
    record["Metadata"] = message.get("Metadata") or {}
    record["MessageStream"] = message.get("MessageStream") or "outbound"
    record["MessageID"] = str(uuid.uuid4())
    record["SubmittedAt"] = datetime.now(UTC).isoformat()
    return record


def _matches(message, query):
    """Postmark's search filters: recipient, tag, messagestream and metadata_<key>, all exact."""
    for name, values in query.items():
        if name.startswith("metadata_"):
            found = message["Metadata"].get(name.removeprefix("metadata_"))
        elif name == "recipient":
            found = next((a for a in _addresses(message["To"]) if a.lower() == values[0].lower()), None)
        elif name in ("tag", "messagestream"):
            found = message["Tag" if name == "tag" else "MessageStream"]
        else:
            continue  # count, offset and filters this fake does not know
        if found is None or str(found).lower() != values[0].lower():
            return False
    return True


def _summary(message):
    to = [{"Email": address, "Name": None} for address in _addresses(message["To"])]
    return {
        "Tag": message["Tag"],
        "MessageID": message["MessageID"],
        "MessageStream": message["MessageStream"],
        "To": to,
        "Cc": [],
        "Bcc": [],
        "Recipients": [recipient["Email"] for recipient in to],
        "ReceivedAt": message["SubmittedAt"],
        "From": message["From"],
        "Subject": message["Subject"],
        "Attachments": [],
        "Status": "Sent",
        "TrackOpens": False,
        "TrackLinks": "None",
        "Metadata": message["Metadata"],
        "Sandboxed": False,
    }


class _Handler(BaseHTTPRequestHandler):
    server_version = "FakePostmark/1.0"

    @property
    def fake(self):
        return self.server.fake

    def log_message(self, format, *args):
        logger.debug("fake Postmark: " + format, *args)

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path in ("/_fake", "/_fake/"):
            query = parse_qs(url.query).get("q", [""])[0]
            return self._html(200, pages.outbox_page(self.fake.outbox, query))
        if url.path.startswith("/_fake/messages/"):
            message_id = url.path.removeprefix("/_fake/messages/").strip("/")
            found = next((m for m in self.fake.outbox if m["MessageID"] == message_id), None)
            if found is None:
                return self._html(404, pages.not_found_page(message_id))
            return self._html(200, pages.message_page(found))
        if url.path == "/_fake/outbox":
            return self._answer(200, self.fake.outbox)
        if url.path == "/_fake/calls":
            return self._answer(200, self.fake.calls)
        if url.path == "/_fake/config":
            return self._answer(200, self.fake.configure())
        if url.path != "/messages/outbound":
            return self._error(404, 0, f"No such endpoint: GET {url.path}")
        if not self._authorised():
            return
        found = self.fake._search(parse_qs(url.query))
        if found is None:
            return self._error(422, 300, "Provide 'count' (1 to 500) and 'offset' query parameters.")
        self._answer(200, found)

    def do_POST(self):
        path = urlsplit(self.path).path
        if path == "/_fake/config":
            return self._configure()
        if path == "/_fake/reset":
            self.fake.reset()
            return self._answer(200, {"reset": True})
        if path not in ("/email", "/email/batch"):
            return self._error(404, 0, f"No such endpoint: POST {path}")
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self._authorised():
            self._send(path, body)

    def _configure(self):
        try:
            options = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            self._answer(200, self.fake.configure(**options))
        except (ValueError, TypeError) as error:
            self._answer(400, {"error": str(error)})

    def _authorised(self):
        if self.headers.get("X-Postmark-Server-Token") == self.fake.token:
            return True
        self._error(401, *STATUS_MESSAGES[401])
        return False

    def _send(self, path, body):
        failure = self.fake._next_failure()
        if failure == "timeout":
            self.fake._log_call(path, None, "timeout")
            return self._hang_up()
        if failure and failure != "accept_then_timeout":
            self.fake._log_call(path, None, int(failure))
            code, text = STATUS_MESSAGES.get(int(failure), (0, "Injected failure."))
            return self._error(int(failure), code, text)
        messages, problem = self._parse(path, body)
        if problem:
            self.fake._log_call(path, None, 422)
            return self._error(422, *problem)
        answers = [self.fake._take(message) for message in messages]
        if failure == "accept_then_timeout":
            self.fake._log_call(path, len(messages), "accept_then_timeout")
            return self._hang_up()
        self.fake._log_call(path, len(messages), 200)
        if path == "/email/batch":
            return self._answer(200, answers)
        self._answer(200 if answers[0]["ErrorCode"] == 0 else 422, answers[0])

    def _parse(self, path, body):
        try:
            data = json.loads(body)
        except ValueError:
            return None, (402, "Received invalid JSON input.")
        if path == "/email":
            return ([data], None) if isinstance(data, dict) else (None, (403, "Incompatible JSON input."))
        if not isinstance(data, list):
            return None, (403, "Incompatible JSON input.")
        if len(data) > BATCH_LIMIT:
            return None, (410, f"Too many batch messages ({len(data)}): the limit is {BATCH_LIMIT}.")
        return data, None

    def _hang_up(self):
        self.fake._stall()
        self.close_connection = True

    def _error(self, status, code, text):
        self._answer(status, {"ErrorCode": code, "Message": text})

    def _html(self, status, page):
        body = page.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _answer(self, status, payload):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
