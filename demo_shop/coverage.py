"""The statistical test of the measurement: seeded simulated batches whose true uplift is known.

For each batch the simulator (demo_shop/simulator.py) decides who buys, posts the purchases through the
real events API, and records the truth; the product then measures as it always does: attribution
(`conversions_attribute`, what the events' task runs), the aggregates (`stats_refresh`) and the treated
vs holdout interval (`groups_compare`, Wald's 95% interval on the response rate). A run checks

- that the interval covers the batch's true uplift (over many batches, about 95% of the time), and
- that buyers per group and conversions attributed by code equal the simulator's records exactly.

The batch itself is written directly (as the dashboard benchmark does): a sent batch of every customer
of a small synthetic shop, split into treated and holdout by the product's own `hashed_draw` on the
batch's seed. Generation is not what is tested here; everything after the send is. Successive batches
are sent 15 days apart, so their 14-day windows never overlap, and each batch's model is fitted on
everything the shop sold before its send (the earlier batches' purchases included).
"""

from datetime import timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db.models import Max
from django.utils import timezone

from campaigns.eligibility import hashed_draw
from campaigns.models import Audience, Batch, BatchUplift, Campaign, Conversion, Promotion, Recipient
from campaigns.services.attribution import conversions_attribute
from campaigns.services.stats import stats_refresh
from campaigns.services.uplift_stats import groups_compare
from demo_shop.simulator import batch_simulate, seeded, simulation_post_due
from promo_site.demo import measurement_window
from shop.models import Customer, Event, EventType, Item

CATEGORIES = {"Dairy > Yogurt": 0.02, "Bakery > Bread": 0.05, "Drinks > Soda": 0.03}  # mean purchase days per day
HISTORY_DAYS = 120
SPACING = timedelta(days=15)  # between two batches' sends: more than a measurement window
CODE = "YOG15"


def synthetic_shop(*, customers=2000, seed="coverage-shop", batches=20):
    """A shop whose history ends where the first batch goes out, with room for `batches` windows up to now."""
    first_send = timezone.now() - SPACING * (batches + 1)
    user, _ = get_user_model().objects.get_or_create(username="coverage", defaults={"is_staff": True})
    people, _ = synthetic_customers(customers=customers, seed=seed, until=first_send)
    promotion = Promotion.objects.create(
        name="15% off yogurt", kind=Promotion.Kind.PERCENT_OFF, value=15, categories=["Dairy > Yogurt"],
        ends_at=timezone.now() + timedelta(days=365), code_mode=Promotion.CodeMode.SHARED, shared_code=CODE,
    )  # fmt: skip
    audience = Audience.objects.create(name="Coverage: everyone", created_by=user)
    campaign = Campaign.objects.create(name="Coverage", audience=audience, created_by=user, holdout_percent=50)
    campaign.promotions.add(promotion)
    return {
        "customers": people, "promotion": promotion, "campaign": campaign, "user": user, "first_send": first_send,
        "seed": seed,
    }  # fmt: skip


def synthetic_customers(*, customers, seed, until):
    """`customers` consenting customers (cov-0, cov-1, ...), 15 priced items in three categories (yogurt, bread,
    soda), and each customer's purchases of them over the HISTORY_DAYS before `until`; returns (customers, items)."""
    rng = seeded(seed)
    items = _items()
    people = Customer.objects.bulk_create(
        Customer(external_id=f"cov-{n}", email=f"cov-{n}@example.test", marketing_consent=True)
        for n in range(customers)
    )
    Event.objects.bulk_create(_history(rng, people, items, until), batch_size=5000)
    return people, items


def _items():
    rows = [
        Item(external_id=f"cov-{slug}-{n}", title=f"{path} {n}", category_path=path, price=Decimal(f"{2 + n}.49"))
        for slug, path in (("y", "Dairy > Yogurt"), ("b", "Bakery > Bread"), ("s", "Drinks > Soda"))
        for n in range(5)
    ]
    return Item.objects.bulk_create(rows)


def _history(rng, customers, items, until):
    """Purchase days per customer and category, at a rate of the customer's own (gamma-distributed)."""
    start = until - timedelta(days=HISTORY_DAYS)
    for customer in customers:
        for path, mean in CATEGORIES.items():
            shelf = [item for item in items if item.category_path == path]
            rate = rng.gamma(0.8, mean / 0.8)
            for day in range(int(rng.poisson(rate * HISTORY_DAYS))):
                item = shelf[int(rng.integers(len(shelf)))]
                yield Event(
                    customer=customer, item=item, type=EventType.PURCHASE, value=item.price, source="coverage-history",
                    client_event_id=f"h-{customer.external_id}-{path}-{day}",
                    occurred_at=start + timedelta(seconds=float(rng.uniform(0, HISTORY_DAYS * 86400))),
                )  # fmt: skip


def sent_batch(*, shop, number, holdout_share=0.5):
    """Batch `number` of the coverage campaign, sent to every customer but its holdout (the product's draw)."""
    sent_at = shop["first_send"] + SPACING * number
    batch = Batch.objects.create(
        campaign=shop["campaign"], number=number + 1, status=Batch.Status.SENT,
        seed=int(seeded(f"{shop['seed']}-holdout-{number}").integers(1 << 62)),
        created_by=shop["user"], generated_at=sent_at - timedelta(hours=1), send_started_at=sent_at, sent_at=sent_at,
    )  # fmt: skip
    promotion = shop["promotion"]
    rows = []
    for customer in shop["customers"]:
        held = hashed_draw(batch.seed, customer.id) < holdout_share
        common = dict(batch=batch, customer=customer, promotion=promotion, code=promotion.shared_code)
        if held:
            rows.append(Recipient(outcome=Recipient.Outcome.EXCLUDED, reason=Recipient.Reason.HOLDOUT, **common))
        else:
            rows.append(
                Recipient(outcome=Recipient.Outcome.RECIPIENT, send_status=Recipient.SendStatus.SENT, sent_at=sent_at,
                          subject="15% off yogurt", **common)
            )  # fmt: skip
    Recipient.objects.bulk_create(rows, batch_size=2000)
    return batch


def coverage_run(*, shop, number, transport):
    """Simulate batch `number`, let the product measure it, and compare: a dict of truth and measurement."""
    batch = sent_batch(shop=shop, number=number)
    simulation = batch_simulate(batch=batch, seed=f"{shop['seed']}-batch-{number}")
    before = Event.objects.aggregate(last=Max("id"))["last"] or 0
    simulation_post_due(simulation=simulation, transport=transport)
    conversions_attribute(first_id=before + 1)  # what the events' attribution task runs once they are stored
    stats_refresh(batch_ids=[batch.id])
    groups = BatchUplift.objects.get(batch=batch).groups
    response = groups_compare(groups).response
    return {
        "batch": number,
        "lift_points": next(iter(simulation.lifts.values())),
        "true_uplift": simulation.true_uplift,
        "measured": response.estimate,
        "low": response.low,
        "high": response.high,
        "covered": bool(response.low <= simulation.true_uplift <= response.high),
        "treated": [simulation.treated, int(groups["treated"]["n"])],
        "holdout": [simulation.holdout, int(groups["holdout"]["n"])],
        "treated_buyers": [simulation.treated_buyers, int(groups["treated"]["responders"])],
        "holdout_buyers": [simulation.holdout_buyers, int(groups["holdout"]["responders"])],
        "code_conversions": [
            simulation.code_purchases,
            Conversion.objects.filter(batch=batch, rule=Conversion.Rule.CODE).count(),
        ],
        "window_days": measurement_window().total_seconds() / 86400,
    }


def records_match(run):
    """True when every [simulator's record, product's measurement] pair of a run agrees."""
    return all(run[key][0] == run[key][1] for key in ("treated", "holdout", "treated_buyers", "holdout_buyers",
                                                         "code_conversions"))  # fmt: skip
