"""What the review page shows about a batch: counts, distributions, expectations, the difference from the last one."""

import numpy as np
from django.db.models import Count, F, Sum

from campaigns.models import Batch, Recipient
from recommender.ml.response.value import bernoulli_sum_interval, incremental_profit_interval
from shop.models import Item

TOP_ITEMS = 20
LISTED_FAILURES = 100
LEVEL = 0.9


def batch_summarise(*, batch):
    rows = Recipient.objects.filter(batch=batch)
    recipients = rows.filter(outcome=Recipient.Outcome.RECIPIENT)
    reasons = dict(rows.values_list("reason").annotate(n=Count("id")).values_list("reason", "n"))
    sent_to = reasons.pop("", 0)
    expected = recipients.aggregate(
        redemptions=Sum("p_response"),
        revenue=Sum("expected_revenue"),
        discount=Sum("expected_discount"),
        value=Sum("expected_value"),
    )
    failures = recipients.exclude(render_error="")
    holdout = reasons.get(Recipient.Reason.HOLDOUT, 0)
    return {
        "total": sent_to + sum(reasons.values()),
        "recipients": sent_to,
        "excluded": reasons,
        "holdout_share": holdout / (holdout + sent_to) if holdout + sent_to else 0.0,
        "promotions": list(
            recipients.values("promotion_id", name=F("promotion__name"))
            .annotate(recipients=Count("id"))
            .order_by("-recipients")
        ),
        "items": _item_counts(recipients),
        "expected": {key: float(value or 0) for key, value in expected.items()},
        "intervals": _intervals(recipients),
        "render_failures": failures.count(),
        "render_failed": [
            {"recipient_id": r.id, "customer": r.customer.external_id, "error": r.render_error}
            for r in failures.select_related("customer")[:LISTED_FAILURES]
        ],
        "difference": _difference(batch),
        # which model gave p(response): a version's response model, or none (the proxy)
        "response_model": Batch.objects.filter(id=batch.id).values_list("response_model_id", flat=True).first(),
    }


def _intervals(recipients):
    """90% intervals of the expectations: each recipient's redemption is an independent Bernoulli(p1) draw,
    worth its revenue, discount and margin per redemption; the incremental profit adds -margin x B(p0)."""
    rows = np.array(
        [
            [float(v or 0) for v in row]
            for row in recipients.filter(p_response__gt=0).values_list(
                "p_baseline", "p_response", "expected_revenue", "expected_discount", "expected_margin"
            )
        ]
    ).reshape(-1, 5)
    if not len(rows):
        return {}
    p0, p1 = rows[:, 0], rows[:, 1]
    revenue, discount, margin = (rows[:, k] / np.maximum(p1, 1e-12) for k in (2, 3, 4))
    return {
        "level": LEVEL,
        "redemptions": bernoulli_sum_interval(p1, level=LEVEL),
        "baseline_buyers": bernoulli_sum_interval(p0, level=LEVEL),
        "revenue": bernoulli_sum_interval(p1, weight=revenue, level=LEVEL),
        "discount": bernoulli_sum_interval(p1, weight=discount, level=LEVEL),
        "incremental_profit": incremental_profit_interval(p0, p1, margin, discount, level=LEVEL),
    }


def _item_counts(recipients):
    """The items shown most, with how many recipients got each as "buy again" and as "new" to them.

    Batches generated before items had a kind count in neither.
    """
    counts, kinds = {}, {}
    for items in recipients.values_list("items", flat=True).iterator(chunk_size=2000):
        for entry in items:
            counts[entry["item_id"]] = counts.get(entry["item_id"], 0) + 1
            key = (entry["item_id"], entry.get("kind"))
            kinds[key] = kinds.get(key, 0) + 1
    top = sorted(counts.items(), key=lambda pair: -pair[1])[:TOP_ITEMS]
    titles = Item.objects.in_bulk([item for item, _ in top])
    return [
        {
            "item_id": item,
            "title": _label(titles.get(item), item),
            "recipients": n,
            "buy_again": kinds.get((item, "buy_again"), 0),
            "new": kinds.get((item, "new"), 0),
        }
        for item, n in top
    ]


def _label(item, item_id):
    if item is None:
        return f"item {item_id}"
    return f"{item.title} ({item.external_id})" if item.title else item.external_id


def _difference(batch):
    """Against the campaign's latest earlier batch that was generated."""
    previous = (
        Batch.objects.filter(campaign=batch.campaign, number__lt=batch.number)
        .exclude(status__in=[Batch.Status.GENERATING, Batch.Status.FAILED])
        .order_by("-number")
        .first()
    )
    if previous is None:
        return None
    now = dict(_recipient_promotions(batch))
    before = dict(_recipient_promotions(previous))
    return {
        "previous_batch": previous.number,
        "previous_recipients": len(before),
        "added": len(now.keys() - before.keys()),
        "removed": len(before.keys() - now.keys()),
        "promotion_changed": sum(1 for customer in now.keys() & before.keys() if now[customer] != before[customer]),
        "excluded_before": previous.summary.get("excluded", {}),
    }


def _recipient_promotions(batch):
    return Recipient.objects.filter(batch=batch, outcome=Recipient.Outcome.RECIPIENT).values_list(
        "customer_id", "promotion_id"
    )
