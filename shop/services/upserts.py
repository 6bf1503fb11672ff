"""Bulk upserts of customers and items by the shop's external id."""

from django.db import transaction

from shop.models import Customer, Item
from shop.services.event_store import ids_by_external_id


def _upsert(model, rows):
    """Insert or update rows (dicts with external_id); a row changes only the fields it names.

    Returns (created, updated).
    """
    # The same id twice in one batch: later rows win, field by field (one statement may not touch a row twice).
    merged = {}
    for row in rows:
        merged.setdefault(row["external_id"], {}).update(row)
    rows = list(merged.values())
    ids = [row["external_id"] for row in rows]
    existing = set(ids_by_external_id(model, ids))
    by_fields = {}
    for row in rows:
        by_fields.setdefault(frozenset(row), []).append(row)
    with transaction.atomic():
        for fields, group in by_fields.items():
            update_fields = sorted(fields - {"external_id"}) + ["is_stub", "updated_at"]
            model.objects.bulk_create(
                [model(**row, is_stub=False) for row in group],
                update_conflicts=True,
                unique_fields=["external_id"],
                update_fields=update_fields,
                batch_size=2000,
            )
    created = len(set(ids) - existing)
    return created, len(set(ids)) - created


def customers_upsert(*, rows):
    """Upsert customers; an erased customer stays erased: its tombstone's personal fields are never filled again."""
    ids = [row["external_id"] for row in rows]
    erased = set(
        Customer.objects.filter(external_id__in=ids, erased_at__isnull=False).values_list("external_id", flat=True)
    )
    return _upsert(Customer, [row for row in rows if row["external_id"] not in erased])


def items_upsert(*, rows):
    return _upsert(Item, rows)
