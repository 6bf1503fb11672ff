"""The simulated shop: who buys after a batch, and everyone else's shopping, posted through the events API.

Per sent batch, once (`batch_simulate`), with a generator seeded from the batch:

1. a true lift in percentage points per promotion of the batch, uniform in LIFT_POINTS, recorded;
2. each treated (sent) and held-out customer's base chance p0 of buying the promotion's items in the
   measurement window, from the simulator's own model (demo_shop/model.py), never the product's;
3. a treated customer buys with chance min(1, p0 + lift), a held-out one with p0; the batch's true
   uplift is the mean over its treated customers of min(1, p0 + lift) - p0;
4. a buyer buys one of the promotion's items at a time uniform in the rest of the window after their
   message (the holdout: after the send); a treated buyer with a code uses it with chance REDEEM_SHARE
   (the event carries `coupon_code` and the promotion's discount), the others pay the list price.

The plan is stored (SimulatedBatch) and its purchases are posted when their time has come
(`simulation_post_due`), with real timestamps. A batch's treated and held-out customers buy nothing else
during its window (`Background` leaves them out), so what the product measures for them is the
simulator's decision alone, and buyers per group can be compared exactly.
"""

import hashlib
from collections import Counter
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from campaigns.models import Batch, Promotion, Recipient
from campaigns.services.stats import batch_send_time
from demo_shop.model import PurchaseModel, shop_history_end
from demo_shop.models import SimulatedBatch
from promo_site.demo import measurement_window
from shop.models import Event, EventType

LIFT_POINTS = (0.0, 8.0)  # a promotion's true lift, percentage points, drawn uniformly
REDEEM_SHARE = 0.8  # of treated buyers who got a code, those who use it
CHUNK = 1000  # events per API call (API_MAX_BATCH)
CENT = Decimal("0.01")


def seeded(seed):
    """A NumPy generator from any string: the same seed, the same draws."""
    return np.random.default_rng(int.from_bytes(hashlib.blake2b(str(seed).encode(), digest_size=8).digest(), "big"))


def batches_to_simulate(now=None):
    """Sent batches whose measurement window is still open and not planned yet (a batch still sending waits;
    imported history, such as Hillstrom's, and batches of before the demo are left alone)."""
    since = (now or timezone.now()) - measurement_window()
    batches = Batch.objects.filter(status=Batch.Status.SENT, simulation__isnull=True)
    return batches.filter(Q(send_started_at__gte=since) | Q(send_started_at__isnull=True, sent_at__gte=since))


def _groups(batch):
    return list(
        batch.recipients.filter(
            Q(outcome=Recipient.Outcome.RECIPIENT, send_status=Recipient.SendStatus.SENT)
            | Q(reason=Recipient.Reason.HOLDOUT),
            promotion__isnull=False,
        )
        .order_by("id")
        .values("id", "customer_id", "customer__external_id", "promotion_id", "code", "sent_at", "outcome")
    )


def _items(promotion):
    """(external id, price) of the promotion's priced items, in a fixed order."""
    rows = promotion.eligible_items().filter(price__gt=0).order_by("id").values_list("external_id", "price")
    return list(rows)


def batch_simulate(*, batch, seed=None, model=None):
    """Plan what the batch's treated and held-out customers buy in its window; returns the SimulatedBatch."""
    start = batch_send_time(batch)
    end = start + measurement_window()
    seed = seed or f"batch-{batch.id}-{batch.seed}"
    rng = seeded(seed)
    rows = _groups(batch)
    promotions = Promotion.objects.in_bulk({row["promotion_id"] for row in rows})
    lifts = {pid: float(rng.uniform(*LIFT_POINTS)) for pid in sorted(promotions)}
    chances = _base_chances(rows, promotions, start, model or PurchaseModel())
    items = {pid: _items(promotion) for pid, promotion in promotions.items()}
    plan, counts, true_sum = [], Counter(), 0.0
    for row in rows:
        group = "treated" if row["outcome"] == Recipient.Outcome.RECIPIENT else "holdout"
        # A promotion with no priced item to buy is bought by nobody, lift or not.
        p0 = chances[(row["customer_id"], row["promotion_id"])] if items[row["promotion_id"]] else 0.0
        p1 = min(1.0, p0 + lifts[row["promotion_id"]] / 100) if group == "treated" and p0 else p0
        draws = rng.random(4)  # buys, when, which item, redeems: drawn for everyone, so seeds line up
        counts[group] += 1
        true_sum += p1 - p0
        if draws[0] >= p1:
            continue
        counts[f"{group}_buyers"] += 1
        plan.append(_purchase(row, promotions[row["promotion_id"]], items[row["promotion_id"]], draws, start, end))
        counts["codes"] += bool(plan[-1]["code"])
    plan.sort(key=lambda entry: (datetime.fromisoformat(entry["at"]), entry["recipient_id"]))
    return SimulatedBatch.objects.create(
        batch=batch,
        seed=seed,
        window_start=start,
        window_end=end,
        lifts={str(pid): lift for pid, lift in lifts.items()},
        true_uplift=true_sum / counts["treated"] if counts["treated"] else 0.0,
        treated=counts["treated"],
        holdout=counts["holdout"],
        treated_buyers=counts["treated_buyers"],
        holdout_buyers=counts["holdout_buyers"],
        code_purchases=counts["codes"],
        plan=plan,
    )


def _base_chances(rows, promotions, start, model):
    """{(customer id, promotion id): p0} from the simulator's own model, per promotion of the batch."""
    chances = {}
    for pid, promotion in promotions.items():
        customers = [row["customer_id"] for row in rows if row["promotion_id"] == pid]
        # The simulated world's window is MEASUREMENT_DAYS long; demo mode only plays it faster.
        found = model.base_chances(
            customer_ids=customers, items=promotion.eligible_items(), until=start, window_days=settings.MEASUREMENT_DAYS
        )
        chances.update(((customer, pid), chance) for customer, chance in found.items())
    return chances


def _purchase(row, promotion, items, draws, start, end):
    """One planned purchase: when (inside the window, after the message), what, at what price, with which code."""
    opens = max(start, row["sent_at"] or start) + timedelta(seconds=1)
    at = opens + (end - timedelta(seconds=1) - opens) * float(draws[1])
    external_id, price = items[min(int(draws[2] * len(items)), len(items) - 1)]
    redeems = bool(row["code"]) and row["outcome"] == Recipient.Outcome.RECIPIENT and draws[3] < REDEEM_SHARE
    quantity = promotion.units_per_redemption() if redeems else 1
    list_price = Decimal(price) * quantity
    discount = min(promotion.discount_cost(price), list_price).quantize(CENT, ROUND_HALF_UP) if redeems else Decimal(0)
    return {
        "recipient_id": row["id"],
        "customer": row["customer__external_id"],
        "item": external_id,
        "at": at.isoformat(),
        "quantity": quantity,
        "value": str(list_price - discount),
        "discount": str(discount),
        "code": row["code"] if redeems else "",
        "group": "treated" if row["outcome"] == Recipient.Outcome.RECIPIENT else "holdout",
    }


def _event(simulation, index, entry):
    event = {
        "event_id": f"sim-{simulation.batch_id}-{index}",
        "customer": entry["customer"],
        "item": entry["item"],
        "type": "purchase",
        "occurred_at": entry["at"],
        "quantity": entry["quantity"],
        "value": entry["value"],
        "discount": entry["discount"],
        "attributes": {"simulated": True},
    }
    if entry["code"]:
        event["attributes"]["coupon_code"] = entry["code"]
    return event


def simulation_post_due(*, simulation, transport, now=None):
    """Post the plan's purchases whose time has come by `now` (all of them with None); returns how many."""
    due = []
    for entry in simulation.plan[simulation.posted :]:  # the plan is in time order
        if now is not None and datetime.fromisoformat(entry["at"]) > now:
            break
        due.append(entry)
    for offset in range(0, len(due), CHUNK):
        first = simulation.posted
        chunk = due[offset : offset + CHUNK]
        transport.post_events([_event(simulation, first + n, entry) for n, entry in enumerate(chunk)])
        # The event ids make a second post of a purchase a duplicate, so a crash here repeats nothing.
        simulation.posted = first + len(chunk)
        SimulatedBatch.objects.filter(id=simulation.id, posted=first).update(posted=simulation.posted)
    return len(due)


def customers_in_open_windows(now=None, since=None):
    """Treated and held-out customers of the batches whose measurement window is open at any moment of
    (since, now]: they buy by plan only. Planned batches, and batches whose send has started but which are
    not planned yet: a batch is planned once it is sent, and its window opened when its send started, so a
    purchase of theirs in between would be measured as the batch's without being the simulator's decision."""
    now = now or timezone.now()
    since = since or now
    planned = SimulatedBatch.objects.filter(window_end__gt=since).values("batch_id")
    unplanned = Batch.objects.filter(
        simulation__isnull=True, send_started_at__lte=now, send_started_at__gt=since - measurement_window()
    ).values("id")
    return set(
        Recipient.objects.filter(Q(batch_id__in=planned) | Q(batch_id__in=unplanned))
        .filter(Q(outcome=Recipient.Outcome.RECIPIENT) | Q(reason=Recipient.Reason.HOLDOUT))
        .values_list("customer_id", flat=True)
    )


class Background:
    """Everyone else keeps shopping: the shop's own recent purchases, replayed at the shop's own rate.

    The rate and the mix (which customer buys which item at what price) are those of the last 28 days of
    purchases, read again every hour (the loaded history first, then the shop's simulated days). In demo
    mode a real second is DEMO_TIME_SCALE simulated seconds: the shop buys a day's worth a minute.
    """

    DAYS = 28
    REFRESH = timedelta(hours=1)

    def __init__(self, *, seed="background", scale=1.0):
        self.rng = seeded(seed)
        self.scale = scale
        self.rows, self.rate, self.read_at, self.count = [], 0.0, None, 0

    def _read(self, now):
        end = shop_history_end(now)
        rows = Event.objects.filter(
            type=EventType.PURCHASE, occurred_at__gte=end - timedelta(days=self.DAYS), occurred_at__lt=end
        )
        self.rows = list(
            rows.filter(item__isnull=False)
            .order_by("id")
            .values_list("customer_id", "customer__external_id", "item__external_id", "quantity", "value")[:200_000]
        )
        self.rate = len(self.rows) / self.DAYS  # purchases per simulated day
        self.read_at = now

    def purchases(self, *, since, now, excluded):
        """The purchases of (since, now]: a Poisson count at the shop's rate, each a recent purchase replayed."""
        if self.read_at is None or now - self.read_at > self.REFRESH:
            self._read(now)
        days = (now - since).total_seconds() * self.scale / 86400
        if not self.rows or days <= 0:
            return []
        events = []
        for _ in range(min(int(self.rng.poisson(self.rate * days)), CHUNK)):
            customer_id, customer, item, quantity, value = self.rows[int(self.rng.integers(len(self.rows)))]
            if customer_id in excluded:
                continue
            self.count += 1
            at = since + (now - since) * float(self.rng.random())
            events.append(
                {
                    "event_id": f"bg-{now.timestamp():.0f}-{self.count}-{self.rng.integers(1 << 30)}",
                    "customer": customer,
                    "item": item,
                    "type": "purchase",
                    "occurred_at": at.isoformat(),
                    "quantity": quantity,
                    "value": str(value if value is not None else 0),
                    "attributes": {"simulated": True},
                }
            )
        return events


def shop_tick(*, transport, background, since, now):
    """One turn of the demo shop: plan newly sent batches, post what is due, and everyone else's shopping."""
    planned = [batch_simulate(batch=batch) for batch in batches_to_simulate(now).order_by("id")]
    unfinished = SimulatedBatch.objects.filter(posted__lt=F("treated_buyers") + F("holdout_buyers"))
    posted = sum(simulation_post_due(simulation=s, transport=transport, now=now) for s in unfinished.order_by("id"))
    others = background.purchases(since=since, now=now, excluded=customers_in_open_windows(now, since))
    for start in range(0, len(others), CHUNK):
        transport.post_events(others[start : start + CHUNK])
    return {"planned": len(planned), "posted": posted, "background": len(others)}
