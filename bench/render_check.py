"""The render check's cost a message: what generation does for every recipient (campaigns/messages.py).

    python bench/render_check.py [--messages 3000] [--items 5] [--json OUT]

Renders the default subject and body (campaigns.models.campaigns' DEFAULT_SUBJECT and DEFAULT_BODY) for
`--messages` recipients of `--items` items each through BatchMessages.check, as generation does, and, as the
reference in the same run, the same check on the messages' signed links (as before the links padded to their
longest, campaigns/links.py's message_links_padded); then the links alone both ways (padded, signed). No
database: the rows are in memory. Prints the rows and, with --json, writes them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _per_message_ms(function, rows, repeat=3):
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for row in rows:
            function(row)
        best = min(best, time.perf_counter() - started)
    return best / len(rows) * 1000


def _links_before(row):
    """The links of a message as campaigns/links.py made them before: a Signer and a reverse() each."""
    from django.conf import settings
    from django.core import signing
    from django.urls import reverse

    from campaigns import links

    site = settings.SITE_URL.rstrip("/")
    items = []
    for entry in row.items:
        pair = [row.id, entry["item_id"]]
        click = signing.Signer(salt=links.CLICK_SALT).sign_object(pair, compress=True)
        not_interested = signing.Signer(salt=links.NOT_INTERESTED_SALT).sign_object(pair, compress=True)
        items.append(
            (
                site + reverse("campaigns:click", args=[click]),
                site + reverse("campaigns:not_interested", args=[not_interested]),
            )
        )
    token = signing.Signer(salt=links.UNSUBSCRIBE_SALT).sign_object(row.id, compress=True)
    return items, site + reverse("campaigns:unsubscribe", args=[token])


def measure(*, messages=3000, items=5):
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "promo_site.settings")
    import django

    django.setup()

    from campaigns import links
    from campaigns.messages import BatchMessages
    from campaigns.models import Batch
    from campaigns.models.campaigns import DEFAULT_BODY, DEFAULT_SUBJECT

    batch = SimpleNamespace(
        rendering=Batch.Rendering.ON_DEMAND,
        message_snapshot={
            "promotions": {
                "1": {"name": "Spring", "description": "", "discount_text": "15% off", "expires": "2030-01-31T00:00"}
            }
        },
        settings=SimpleNamespace(subject_template=DEFAULT_SUBJECT, body_template=DEFAULT_BODY),
    )
    renderer = BatchMessages(batch)
    entries = [
        {"item_id": 1000 + n, "title": f"Item {n} & co", "price": "9.99", "image_url": "https://shop.example.test/i.jpg",
         "because": "", "reason": ""}
        for n in range(items)
    ]  # fmt: skip
    customer = SimpleNamespace(name="Alex Sample", email="alex@example.test")
    rows = [
        SimpleNamespace(id=5_000_000 + n, items=entries, customer=customer, promotion_id=1, code="ABCD-2345")
        for n in range(messages)
    ]
    # the links are Django's (a Signer and a reverse() per link)
    assert _links_before(rows[0]) == links.message_links(rows[0].id, [e["item_id"] for e in entries])
    # the reference, in the same run: the check on the signed links (before the padded links)
    check_before = _per_message_ms(lambda row: renderer.render_check.check(renderer.context(row)), rows)
    check_now = _per_message_ms(renderer.check, rows)
    links_now = _per_message_ms(lambda row: links.message_links_padded(row.id, [e["item_id"] for e in row.items]), rows)
    links_before = _per_message_ms(lambda row: links.message_links(row.id, [e["item_id"] for e in row.items]), rows)
    common = {"goal": None, "unit": "ms/message", "messages": messages, "items": items}
    return [
        {"name": "render_check", "value": round(check_now, 4), "reference": round(check_before, 4),
         "ok": check_now <= check_before, **common},
        {"name": "render_check_links", "value": round(links_now, 4), "reference": round(links_before, 4),
         "ok": links_now <= links_before, **common},
    ]  # fmt: skip


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--items", type=int, default=5)
    parser.add_argument("--json", help="write the rows to this file")
    args = parser.parse_args()
    if args.messages < 1 or args.items < 0:
        parser.error("--messages must be at least 1 and --items at least 0")
    rows = measure(messages=args.messages, items=args.items)
    for row in rows:
        print(json.dumps(row))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
