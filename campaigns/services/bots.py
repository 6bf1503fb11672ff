"""Telling bots and link scanners from people in opens and clicks.

Flagged events are kept (is_bot, bot_reason) and left out of the stats: count
`MessageEvent.objects.human()`. Two tests, both cheap and both documented in docs/ARCHITECTURE.md:

1. The user agent names a crawler, a mail security scanner, an HTTP library or a headless browser
   (USER_AGENT_MARKERS below), or there is none (every browser sends one), or the request is a HEAD
   (a link checker; browsers follow links with GET).
2. Every item link of a message clicked within BOT_CLICK_SECONDS (default 10) of its delivery: a
   security gateway (Mimecast, Proofpoint, Microsoft Safe Links, ...) follows every link as the
   message arrives, often with a browser's user agent. All those clicks are flagged, and so are the
   message's opens in the same window (the scanner fetched the images too). A person who clicks
   later is not affected.

What this misses, honestly: a scanner with a browser's user agent that clicks only some links, or
takes its time; Apple Mail Privacy Protection's image prefetch (a browser-like user agent, at some
moment after delivery), which inflates opens. Clicks are the signal to trust over opens.
"""

import re
from datetime import timedelta

from django.conf import settings

from campaigns.models import MessageEvent, Recipient

Kind = MessageEvent.Kind

# (regular expression, what it is, kinds it applies to). Case-insensitive, searched anywhere in the
# user agent. Keep it short and obvious: a false positive hides a real customer's click.
USER_AGENT_MARKERS = [
    (r"(?<!cu)bot\b|crawl|spider|slurp", "a crawler", None),  # not CUBOT, a phone brand
    (r"preview|linkexpanding|facebookexternalhit|embedly|skypeuripreview", "a link preview", None),
    (r"barracuda|mimecast|proofpoint|ironport|forcepoint|trend ?micro|sophos|symantec|fortiguard", "a scanner", None),
    (r"zscaler|safelinks|safe links|appriver|messagelabs|cisco", "a scanner", None),
    # Outlook on Windows fetches a message's images as "Microsoft Office/16.0 (... Microsoft Outlook ...)"
    # when a person opens it, but a click with that agent is Office's link check, never a person.
    (r"microsoft office|ms-office|existence discovery", "Microsoft Office's link check", {Kind.CLICKED}),
    (r"python-requests|python-urllib|aiohttp|httpx|curl/|wget|go-http-client|okhttp|java/", "an HTTP library", None),
    (r"libwww-perl|apache-httpclient|node-fetch|axios/|guzzle|scrapy", "an HTTP library", None),
    (r"headlesschrome|phantomjs|puppeteer|playwright|selenium|lighthouse", "a headless browser", None),
]
_MARKERS = [(re.compile(pattern, re.IGNORECASE), label, kinds) for pattern, label, kinds in USER_AGENT_MARKERS]


def user_agent_verdict(user_agent: str | None, *, kind: str, method: str = "GET") -> str:
    """Why an open or click with this user agent is a bot's, or "" when it may be a person's."""
    if method == "HEAD":
        return "HEAD request (a link checker)"
    user_agent = (user_agent or "").strip()
    if not user_agent:
        return "no user agent"
    for pattern, label, kinds in _MARKERS:
        found = pattern.search(user_agent)
        if found and (kinds is None or kind in kinds):
            return f"user agent of {label} ({found.group(0)})"
    return ""


def link_scan_flag(*, recipient: Recipient) -> int:
    """Flag the message's clicks and opens when every item link was clicked within BOT_CLICK_SECONDS of delivery.

    Call it with the recipient's row locked (select_for_update) after storing a click or a delivery,
    so that concurrent clicks of one scanner see each other. Delivery time: the provider's, else the
    time we handed the message over (earlier, so the window is never wider than it should be).
    Returns the number of events flagged now.
    """
    start = recipient.delivered_at or recipient.sent_at
    links = {entry["item_id"] for entry in recipient.items}
    if start is None or not links:
        return 0
    seconds = settings.BOT_CLICK_SECONDS
    window = MessageEvent.objects.filter(recipient=recipient, occurred_at__lte=start + timedelta(seconds=seconds))
    clicked = set(window.filter(kind=Kind.CLICKED, item__isnull=False).values_list("item_id", flat=True))
    if not links <= clicked:
        return 0
    reason = f"every item link clicked within {seconds} s of delivery (a link scanner)"
    return window.filter(kind__in=[Kind.CLICKED, Kind.OPENED], is_bot=False).update(is_bot=True, bot_reason=reason)
