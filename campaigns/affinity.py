"""Affinity of customers to a promotion: the active model's probability that their next item is eligible."""

import math

import numpy as np
from django.core.cache import cache

from recommender import serving
from shop.models import Customer

CACHE_SECONDS = 3600


def eligible_columns(promotion, item_ids):
    """Boolean mask over the model's item_ids: the promotion's eligible, active, in-stock items."""
    eligible = set(promotion.eligible_items().filter(active=True, in_stock=True).values_list("id", flat=True))
    return np.fromiter((int(i) in eligible for i in item_ids), dtype=bool, count=len(item_ids))


def affinity_scores(*, promotion):
    """(customer_ids, affinity) arrays for every customer, cached per model version and promotion version.

    Scoring the whole customer base runs the model on every history (chunks of 512); cached so a rule
    builder's live count is fast after the first time.
    """
    served = serving.served_model()
    key = f"affinity:{served.version.id}:{promotion.id}:{promotion.version}"
    cached = cache.get(key)
    if cached is not None:
        return cached
    mask = eligible_columns(promotion, served.item_ids)
    customer_ids = list(Customer.objects.filter(is_stub=False).values_list("id", flat=True))
    scores = np.zeros(len(customer_ids), dtype=np.float32)
    offset = 0
    for chunk in serving.serve_chunks(served, customer_ids=customer_ids):
        scores[offset : offset + len(chunk.customer_ids)] = chunk.proba[:, mask].sum(axis=1)
        offset += len(chunk.customer_ids)
    result = (np.asarray(customer_ids, dtype=np.int64), scores)
    cache.set(key, result, CACHE_SECONDS)
    return result


def affinity_top_percent(*, promotion_id, percent):
    """Ids of the customers in the top `percent` % by affinity to the promotion's items."""
    from campaigns.models import Promotion

    customer_ids, scores = affinity_scores(promotion=Promotion.objects.get(pk=promotion_id))
    keep = math.ceil(len(customer_ids) * percent / 100)
    order = np.argsort(-scores, kind="stable")[:keep]
    return customer_ids[order].tolist()
