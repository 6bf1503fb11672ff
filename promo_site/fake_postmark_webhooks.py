"""The fake Postmark's tracking webhooks: what Postmark would report about each message it accepted.

For the demo (DEMO_MODE, `run_stack`) the fake posts, to the product's real anymail tracking endpoint with
the webhook secret as HTTP basic auth, Postmark's Delivery, Bounce, SpamComplaint, Open and Click records
(shapes as https://postmarkapp.com/developer/webhooks/webhooks-overview documents them), at plausible
rates and delays. A click is what a person does: it follows one of the message's own signed item links
(GET, a desktop browser's user agent, the redirect not followed), which records the click in the product,
and Postmark reports it too. Stdlib only, like the fake itself.

Rates, per accepted message (RATES): 2% bounce (three in four hard: the address is gone), the rest are
delivered; of those 35% are opened, 30% of the openers click, 0.2% complain. Delays are simulated time,
divided by the demo's time scale: delivery after a few seconds (not scaled: it takes seconds in life too),
an open after an exponential 4 hours, a click 3 minutes after the open, a complaint after a day. A click
comes at least `min_click_seconds` of real time after the delivery: every link of a message clicked within
BOT_CLICK_SECONDS (10) of delivery is how the product recognises a link scanner.
"""

import base64
import heapq
import itertools
import json
import logging
import random
import re
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from email.utils import getaddresses

logger = logging.getLogger(__name__)

RATES = {"bounce": 0.02, "hard_bounce": 0.75, "open": 0.35, "click": 0.30, "spam": 0.002}
# Mean delays in simulated seconds (exponential), except the delivery, in real seconds.
DELAYS = {"delivery": (1.0, 4.0), "open": 4 * 3600.0, "click": 180.0, "spam": 86400.0}
BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"
ITEM_LINK = re.compile(r'href="(https?://[^"]+/r/[^"/]+/)"')
RETRIES = 5  # Postmark retries a webhook that did not get a 200; so does the fake, a few times


def stamp(at):
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # the shop's page is not ours to fetch: the click is recorded before the redirect


class WebhookSender:
    """Plans each accepted message's events and posts them when due, from a thread of its own."""

    def __init__(self, *, url, auth, time_scale=1.0, seed=None, rates=None, min_click_seconds=20.0):
        self.url = url
        self.auth = auth
        self.time_scale = float(time_scale)
        self.rates = {**RATES, **(rates or {})}
        self.min_click_seconds = float(min_click_seconds)
        self.posted = []  # (record type, message id, HTTP status or error), for tests and the log
        self._random = random.Random(seed)
        self._queue, self._order = [], itertools.count()
        self._ids = itertools.count(4_323_372_036_854_775_000)
        self._wake = threading.Condition()
        self._stopping = False
        self._opener = urllib.request.build_opener(_NoRedirect)
        self._thread = threading.Thread(target=self._run, name="fake-postmark-webhooks", daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def idle(self):
        with self._wake:
            return not self._queue

    # --- planning -----------------------------------------------------------------

    def message_accepted(self, record):
        """Plan what Postmark would report about this message: a delivery or a bounce, then opens and clicks."""
        now, draw, rates = time.monotonic(), self._random.random, self.rates
        delivered = now + self._random.uniform(*DELAYS["delivery"])
        if draw() < rates["bounce"]:
            return self._plan(delivered, "Bounce", record, hard=draw() < rates["hard_bounce"])
        self._plan(delivered, "Delivery", record)
        if draw() < rates["spam"]:
            self._plan(delivered + self._later("spam"), "SpamComplaint", record)
        if draw() >= rates["open"]:
            return
        opened = delivered + self._later("open")
        self._plan(opened, "Open", record)
        if draw() < rates["click"]:
            clicked = max(opened + self._later("click"), delivered + self.min_click_seconds)
            self._plan(clicked, "Click", record)

    def _later(self, kind):
        return self._random.expovariate(1.0 / DELAYS[kind]) / self.time_scale

    def _plan(self, due, kind, record, **extra):
        with self._wake:
            heapq.heappush(self._queue, (due, next(self._order), kind, record, extra, 0))
            self._wake.notify()

    # --- posting --------------------------------------------------------------------

    def _run(self):
        while True:
            with self._wake:
                while not self._stopping and (not self._queue or self._queue[0][0] > time.monotonic()):
                    self._wake.wait(timeout=(self._queue[0][0] - time.monotonic()) if self._queue else None)
                if self._stopping:
                    return
                due, order, kind, record, extra, attempt = heapq.heappop(self._queue)
            status = self._send(kind, record, extra)
            self.posted.append((kind, record["MessageID"], status))
            if status != 200 and attempt + 1 < RETRIES:
                retry = (time.monotonic() + 2**attempt, order, kind, record, extra, attempt + 1)
                with self._wake:
                    heapq.heappush(self._queue, retry)

    def _send(self, kind, record, extra):
        try:
            if kind == "Click":
                link = self._follow_a_link(record)
                if link is None:
                    return "no item link"
                extra = {**extra, "link": link}
            return self._post(_payload(kind, record, datetime.now(UTC), next(self._ids), **extra))
        except (OSError, ValueError) as error:  # the site is down or restarting: retried
            logger.warning("fake Postmark: %s webhook for %s failed: %s", kind, record["MessageID"], error)
            return f"error: {error}"

    def _follow_a_link(self, record):
        links = ITEM_LINK.findall(record.get("HtmlBody") or "")
        if not links:
            return None
        link = self._random.choice(links)
        request = urllib.request.Request(link, headers={"User-Agent": BROWSER})
        try:
            self._opener.open(request, timeout=10).close()
        except urllib.error.HTTPError as answer:
            if answer.code not in (301, 302, 303, 307, 308):
                raise ValueError(f"{link} answered {answer.code}") from answer
        return link

    def _post(self, payload):
        token = base64.b64encode(self.auth.encode()).decode()
        request = urllib.request.Request(
            self.url,
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Basic {token}"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status
        except urllib.error.HTTPError as answer:
            logger.warning("fake Postmark: the webhook endpoint answered %s", answer.code)
            return answer.code


def _payload(kind, record, at, record_id, hard=False, link=None):
    """One Postmark webhook record about an accepted message."""
    email = _first_address(record["To"])
    common = {
        "RecordType": kind,
        "MessageStream": record.get("MessageStream") or "outbound",
        "MessageID": record["MessageID"],
        "ServerID": 1,
        "Tag": record.get("Tag") or "",
        "Metadata": record.get("Metadata") or {},
    }
    if kind == "Delivery":
        return common | {"Recipient": email, "DeliveredAt": stamp(at), "Details": "smtp;250 2.0.0 OK"}
    if kind in ("Bounce", "SpamComplaint"):
        return common | _bounce(kind, hard) | {
            "ID": record_id, "Email": email, "From": record.get("From") or "", "BouncedAt": stamp(at),
            "DumpAvailable": False, "Subject": record.get("Subject") or "",
        }  # fmt: skip
    engagement = common | {
        "Recipient": email, "ReceivedAt": stamp(at), "Platform": "Desktop", "UserAgent": BROWSER,
        "OS": {"Name": "Windows 10", "Family": "Windows", "Company": "Microsoft Corporation"},
        "Client": {"Name": "Chrome 124", "Family": "Chrome", "Company": "Google"}, "Geo": {},
    }  # fmt: skip
    if kind == "Open":
        return engagement | {"FirstOpen": True, "ReadSeconds": 12}
    return engagement | {"ClickLocation": "HTML", "OriginalLink": link}


def _bounce(kind, hard):
    if kind == "SpamComplaint":
        return {"Type": "SpamComplaint", "TypeCode": 512, "Name": "Spam complaint", "Inactive": True,
                "CanActivate": False, "Description": "The subscriber explicitly marked this email as spam.",
                "Details": "Spam complaint"}  # fmt: skip
    if hard:
        return {"Type": "HardBounce", "TypeCode": 1, "Name": "Hard bounce", "Inactive": True, "CanActivate": True,
                "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
                "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist."}  # fmt: skip
    return {"Type": "SoftBounce", "TypeCode": 4096, "Name": "Soft bounce/Undeliverable", "Inactive": False,
            "CanActivate": True, "Description": "Unable to temporarily deliver this email.",
            "Details": "smtp;452 4.2.2 Mailbox full"}  # fmt: skip


def _first_address(field):
    found = [address for _name, address in getaddresses([str(field)]) if address]
    return found[0] if found else ""
