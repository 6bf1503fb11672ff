"""Recommendations from the active model version, for the campaign work (batched, vectorised).

The model is loaded once per worker process and kept until another version becomes active.
"""

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.conf import settings

from recommender.interactions import histories_for, not_interested_items, purchased_items
from recommender.models import ModelVersion
from shop.models import Item

CHUNK = 512  # customers scored at once: 512 x 100k items of float32 is 200 MB
_cache = {}
_lock = threading.Lock()


class NoActiveModel(Exception):
    """No model version is active yet: train one and activate it."""


@dataclass
class Recommendation:
    item_id: int
    score: float
    because_item_id: int | None  # the customer's past item that contributed most


def active_model():
    """(version, model, item_ids) of the active version, loaded lazily."""
    from recommender.ml import load

    version = ModelVersion.objects.active().first()
    if version is None:
        raise NoActiveModel("no model version is active; train one and activate it in the admin")
    with _lock:
        if _cache.get("version_id") != version.id:
            folder = Path(settings.MEDIA_ROOT) / version.artifact
            _cache.update(version_id=version.id, model=load(folder), item_ids=np.load(folder / "item_ids.npy"))
        return version, _cache["model"], _cache["item_ids"]


def recommend(customer_ids, k=10, exclude_purchased=True, restrict_to=None):
    """Top-k items per customer: {customer_id: [Recommendation, ...]} from the active model.

    `restrict_to` is a collection of item ids (a promotion's eligible items); only active, in-stock
    items are ever recommended, and never one the customer said "not interested" in. Scoring runs over
    chunks of customers, top-k with argpartition.
    """
    from recommender.ml.ranking import top_k

    version, model, item_ids = active_model()
    allowed = _allowed_mask(item_ids, restrict_to)
    customer_ids = [int(c) for c in customer_ids]
    out = {}
    for start in range(0, len(customer_ids), CHUNK):
        chunk = customer_ids[start : start + CHUNK]
        histories, event_types, timestamps = histories_for(customer_ids=chunk, item_ids=item_ids)
        scores = np.array(model.score(histories, event_types=event_types, timestamps=timestamps), dtype=np.float32)
        scores[:, ~allowed] = -np.inf
        if exclude_purchased:
            _mask_purchased(scores, chunk, item_ids)
        _mask(scores, not_interested_items(customer_ids=chunk), chunk, item_ids)  # always: the customer said so
        top, top_scores = top_k(scores, min(k, int(allowed.sum())))
        for row, customer in enumerate(chunk):
            out[customer] = _explained(model, histories[row], top[row], top_scores[row], item_ids)
    return out


def probability_chunks(customer_ids, chunk=CHUNK):
    """Yield (customer_ids, histories, proba) per chunk: proba (n, n_items) is the active model's
    probability of each item being the customer's next one (columns in the order of item_ids)."""
    _version, model, item_ids = active_model()
    customer_ids = [int(c) for c in customer_ids]
    for start in range(0, len(customer_ids), chunk):
        part = customer_ids[start : start + chunk]
        histories, event_types, timestamps = histories_for(customer_ids=part, item_ids=item_ids)
        proba = model.predict_proba(histories, event_types=event_types, timestamps=timestamps)
        yield part, histories, np.asarray(proba, dtype=np.float32)


def because_items(history, columns):
    """For each item column, the customer's past item (an Item id) that contributed most, or None."""
    _version, model, item_ids = active_model()
    if not len(history) or not len(columns):
        return [None] * len(columns)
    reasons = model.explain(history, np.asarray(columns, np.int64))
    return [None if reason is None or reason < 0 else int(item_ids[history[reason]]) for reason in reasons]


def usable_item_mask(item_ids, restrict_to=None):
    """Boolean mask over item_ids: active, in stock and (when given) in restrict_to."""
    return _allowed_mask(item_ids, restrict_to)


def _allowed_mask(item_ids, restrict_to):
    usable = set(Item.objects.filter(id__in=item_ids.tolist(), active=True, in_stock=True).values_list("id", flat=True))
    if restrict_to is not None:
        usable &= {int(i) for i in restrict_to}
    return np.array([int(i) in usable for i in item_ids], dtype=bool)


def _mask_purchased(scores, customers, item_ids):
    _mask(scores, purchased_items(customer_ids=customers), customers, item_ids)


def _mask(scores, items_by_customer, customers, item_ids):
    index = {int(item): i for i, item in enumerate(item_ids)}
    for row, items in enumerate(items_by_customer[c] for c in customers):
        columns = [index[i] for i in items if i in index]
        scores[row, columns] = -np.inf


def _explained(model, history, top, top_scores, item_ids):
    keep = np.isfinite(top_scores)
    top, top_scores = top[keep], top_scores[keep]
    reasons = model.explain(history, top) if len(history) and len(top) else [None] * len(top)
    return [
        Recommendation(
            int(item_ids[item]), float(score), None if reason is None or reason < 0 else int(item_ids[history[reason]])
        )
        for item, score, reason in zip(top, top_scores, reasons)
    ]
