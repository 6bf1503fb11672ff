"""Storing a batch of events posted to the API: per-row rejections, idempotent on (source, event id)."""

from dataclasses import dataclass, field

import pandas as pd
from django.db import transaction

from shop.models import Customer, Item
from shop.services.event_rows import FIELDS, RowChecker
from shop.services.event_store import event_writer
from shop.signals import events_high_water, events_stored_announce


class BatchError(Exception):
    """The batch as a whole is malformed; nothing was stored."""


@dataclass
class BatchResult:
    received: int
    stored: int = 0
    duplicates: int = 0
    customers_created: int = 0
    items_created: int = 0
    rejected: list = field(default_factory=list)


def _frame(events):
    for index, event in enumerate(events):
        if not isinstance(event, dict):
            raise BatchError(f"events[{index}] is not an object")
    frame = pd.DataFrame.from_records(events).reindex(columns=[*FIELDS, "attributes"])
    return frame.astype({name: object for name in FIELDS})


def _check_scalars(frame, rejections):
    """Ids, types and times must be plain values; an object or a list there is a client bug."""
    for name in ("customer", "item", "type", "occurred_at", "event_id", "order"):  # numbers are checked as numbers
        for row, value in frame[name].items():
            if isinstance(value, (dict, list)):
                rejections.append(
                    (row, name, str(value)[:200], f"{name} must be a single value, not {type(value).__name__}")
                )


def _check_attributes(frame, rejections):
    for row, value in frame["attributes"].items():
        missing = value is None or (isinstance(value, float) and pd.isna(value))  # absent key: NaN
        if not missing and not isinstance(value, dict):
            rejections.append((row, "attributes", str(value)[:200], "attributes must be an object"))


def _check_known(rows, rejections):
    """For on_unknown=reject: reject rows naming customers or items we do not have."""
    known_customers = set(
        Customer.objects.filter(external_id__in=set(rows["customer"])).values_list("external_id", flat=True)
    )
    items = set(rows["item"].dropna())
    known_items = set(Item.objects.filter(external_id__in=items).values_list("external_id", flat=True))
    for row, customer, item in zip(rows.index, rows["customer"], rows["item"]):
        if customer not in known_customers:
            rejections.append((row, "customer", customer, "unknown customer"))
        if item is not None and item not in known_items:
            rejections.append((row, "item", item, "unknown item"))


def events_store_batch(*, source, events, on_unknown="create"):
    """Validate and store a batch; rows with problems are reported, the others stored once."""
    frame = _frame(events)
    checker = RowChecker(mapping={name: name for name in FIELDS}, source=source)
    checked = checker.check(frame, 0)
    rejections = list(checked.rejections)
    _check_attributes(frame, rejections)
    _check_scalars(frame, rejections)
    rows = checked.rows
    if on_unknown == "reject" and not rows.empty:
        _check_known(rows, rejections)
    bad_rows = {row for row, *_ in rejections}
    rows = rows[~rows.index.isin(bad_rows)]
    rows = rows.assign(attributes=[a if isinstance(a, dict) else None for a in frame.loc[rows.index, "attributes"]])
    with transaction.atomic(), event_writer() as writer:
        after_id = events_high_water()
        writer.add(rows)
        stored = writer.finish()
        if stored.stored:
            events_stored_announce(source=source, after_id=after_id, types=stored.types)
    return BatchResult(
        received=len(events),
        stored=stored.stored,
        duplicates=stored.duplicates,
        customers_created=stored.customers_created,
        items_created=stored.items_created,
        rejected=_group_rejections(rejections, frame),
    )


def _group_rejections(rejections, frame):
    by_row = {}
    for row, column, value, reason in sorted(rejections, key=lambda r: r[0]):
        by_row.setdefault(row, []).append({"field": column, "value": value, "reason": reason})
    event_ids = frame["event_id"]
    return [
        {"row": row, "event_id": None if pd.isna(event_ids[row]) else str(event_ids[row]), "errors": errors}
        for row, errors in by_row.items()
    ]
