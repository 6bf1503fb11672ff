"""The simulated shop's own model of its customers: how likely each is to buy a promotion's items.

Fitted on the shop's events, never on the product's recommender or response model: if the simulator
drew its customers from the product's own predictions, predicted and measured would agree by
construction and the demo would prove nothing.

Per customer c and promotion P (its eligible items E), from the year of purchases before the send:

    n_c   = days on which c bought an item of E            T = days of history (at most 365)
    mu    = sum of n_c / (customers x T)                   the population's daily rate
    rate  = (n_c + K x mu) / (T + K)                       shrunk towards mu (K = 30 days of prior)
    p0_c  = 1 - exp(-rate x W)                              chance of buying E in a window of W days

clipped to [0.002, 0.95]. A shop whose history ended more than a year before the send is read up to its
last purchase. A purchase day, not a line, is the unit: five yogurts in one basket are one
decision to buy yogurt.
"""

import math
from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Count, Max, Min
from django.db.models.functions import TruncDate

from shop.models import Event, EventType


@dataclass
class PurchaseModel:
    history_days: float = 365.0
    prior_days: float = 30.0
    min_chance: float = 0.002
    max_chance: float = 0.95

    def base_chances(self, *, customer_ids, items, until, window_days):
        """{customer id: chance of buying any of `items` (a queryset of Item) within window_days after until}."""
        customer_ids = list(customer_ids)
        if not customer_ids:
            return {}
        until = shop_history_end(until)
        purchases = Event.objects.filter(
            type=EventType.PURCHASE,
            occurred_at__gte=until - timedelta(days=self.history_days),
            occurred_at__lt=until,
        )
        days = self._history_span(purchases, until)
        counts = dict(
            purchases.filter(customer_id__in=customer_ids, item_id__in=items.values("id"))
            .values("customer_id")
            .annotate(n=Count(TruncDate("occurred_at"), distinct=True))
            .values_list("customer_id", "n")
        )
        mu = sum(counts.values()) / (len(customer_ids) * days)
        chances = {}
        for customer_id in customer_ids:
            rate = (counts.get(customer_id, 0) + self.prior_days * mu) / (days + self.prior_days)
            chance = 1 - math.exp(-rate * window_days)
            chances[customer_id] = min(max(chance, self.min_chance), self.max_chance)
        return chances

    def _history_span(self, purchases, until):
        first = purchases.aggregate(first=Min("occurred_at"))["first"]
        if first is None:
            return self.history_days
        return max((until - first).total_seconds() / 86400, 1.0)


def shop_history_end(until):
    """`until`, or just after the shop's last purchase before it when the year before `until` has none (a
    demo whose history was loaded without moving its dates to today: its customers keep their habits)."""
    purchases = Event.objects.filter(type=EventType.PURCHASE, occurred_at__lt=until)
    if purchases.filter(occurred_at__gte=until - timedelta(days=365)).exists():
        return until
    last = purchases.aggregate(last=Max("occurred_at"))["last"]
    return until if last is None else last + timedelta(seconds=1)
