"""Signals the shop sends for the stages to its right (which shop itself never imports)."""

from django.db import transaction
from django.db.models import Max
from django.dispatch import Signal

# Sent after an import stored a source's campaign history (ExternalCampaign / ExternalCoupon); kwargs: source.
history_imported = Signal()

# Sent inside the transaction that stored events (an API batch or a file import), after the rows are written:
# a receiver records its follow-up work in the outbox (promo_site/outbox.py), which commits or rolls back with
# the events, and does nothing slow. kwargs: source, first_id, last_id: every event stored by that write has an
# id in [first_id, last_id] (the range may also hold other writers' events; a receiver must treat it as "look
# here", not "exactly these"); types: the event types among that write's rows (a set; None when not known), so
# that a receiver with nothing to do for views, say, skips a batch of views without looking.
events_stored = Signal()

# The right of access and erasure (shop/services/privacy.py). customer_exported is sent while exporting one
# customer; kwargs: customer_id; each receiver returns a dict of JSON-ready sections to add to the export.
# customer_erased is sent inside the erasure's transaction; kwargs: customer_id; each receiver removes the
# personal data it holds about that customer and returns {what: rows changed} for the audit record.
customer_exported = Signal()
customer_erased = Signal()

# Data sets that other apps know how to import with `import_data NAME PATH` (campaigns registers "hillstrom"):
# name -> callable(path, progress) returning a one-line summary. Filled in AppConfig.ready().
dataset_importers = {}


def events_high_water():
    """The highest event id now (0 when there is none): the lower bound of a write that starts next.

    Inside a transaction the read's locks are let go at once (a savepoint rolled back): kept until a long
    import commits, its lock of the events' DEFAULT partition would make every other writer's ATTACH of a
    new month's partition wait for the import (shop/services/event_partitions.py).
    """
    from shop.models import Event

    if not transaction.get_connection().in_atomic_block:
        return Event.objects.aggregate(last=Max("id"))["last"] or 0
    savepoint = transaction.savepoint()
    try:
        return Event.objects.aggregate(last=Max("id"))["last"] or 0
    finally:
        transaction.savepoint_rollback(savepoint)


def events_stored_announce(*, source, after_id, types=None):
    """Send events_stored, inside the writer's transaction, for events with ids above after_id."""
    last_id = events_high_water()  # inside the writer's transaction: sees its own rows
    if last_id > after_id:
        events_stored.send(sender="shop", source=source, first_id=after_id + 1, last_id=last_id, types=types)
