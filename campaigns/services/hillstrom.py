"""`python manage.py import_data hillstrom PATH`: Kevin Hillstrom's e-mail test as a past campaign.

64,000 customers split at random into a Mens e-mail, a Womens e-mail and no e-mail. The import makes
one sent campaign with two batches (Mens, Womens) whose recipients are the e-mailed customers; the No
E-Mail customers are the holdout of *both* batches (the experiment had one control group; each batch is
compared with all of it, which is what the published figures do). Each visit becomes a "view" event and
each conversion a "purchase" worth the customer's spend, dated inside the two weeks after SEND_AT, so the
dashboard's treated-vs-holdout figures for this campaign (response: a visit) are the experiment's ground
truth: visit uplift +0.0766 (Mens) and +0.0452 (Womens).

Customers are `hillstrom-<row>` (row of the file, from 0), without marketing consent (never mailed); the
file's columns go to demographics (numbers) and attributes (the rest), which the uplift model reads.
"""

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from campaigns.batch_settings import BatchSettings
from campaigns.models import Audience, Batch, Campaign, Promotion, Recipient
from campaigns.services.attribution import conversions_attribute
from campaigns.services.batches import batch_import_sent
from campaigns.services.stats import stats_refresh
from shop.models import Customer, Event, EventType

SEND_AT = datetime(2008, 3, 3, 9, 0, tzinfo=UTC)  # the data set has no dates: a fixed, documented one
CAMPAIGN = "Hillstrom e-mail test"
SOURCE = "hillstrom"
BATCHES = [("Mens E-Mail", "Mens"), ("Womens E-Mail", "Womens")]
CONTROL = "No E-Mail"
DEMOGRAPHICS = ["recency", "history", "mens", "womens", "newbie"]
ATTRIBUTES = ["history_segment", "zip_code", "channel", "segment"]


def _visit_time(row):
    """Spread over the two weeks after the send (1 h to 13 days in), the same on every import."""
    return SEND_AT + timedelta(hours=1 + (row * 37) % (13 * 24))


def hillstrom_import(*, path, progress=lambda message: None):
    """Import the file; returns a one-line summary. Raises ValueError (HillstromError) for a bad file."""
    from recommender.ml.uplift import hillstrom_read

    frame = hillstrom_read(path)
    if Campaign.objects.filter(name=CAMPAIGN).exists():
        raise ValueError(f'"{CAMPAIGN}" is already imported (delete that campaign to import again)')
    with transaction.atomic():
        customer_ids = _customers(frame)
        progress(f"{len(customer_ids):,} customers")
        batches = _campaign(frame, customer_ids)
        first_id, last_id, visits, purchases = _events(frame, customer_ids)
        progress(f"{visits:,} visits and {purchases:,} purchases as events")
    attributed = conversions_attribute(first_id=first_id, last_id=last_id).attributed
    stats_refresh(batch_ids=[b.id for b in batches])
    return (
        f"Hillstrom: {len(customer_ids):,} customers, campaign {CAMPAIGN!r} with batches "
        f"{', '.join(b.settings.label for b in batches)}, {visits:,} visits, "
        f"{purchases:,} purchases ({attributed:,} attributed to a message)"
    )


def _customers(frame):
    records = frame[DEMOGRAPHICS + ATTRIBUTES].to_dict("records")
    Customer.objects.bulk_create(
        [
            Customer(
                external_id=f"hillstrom-{row}",
                demographics={k: float(record[k]) for k in DEMOGRAPHICS},
                attributes={k: str(record[k]) for k in ATTRIBUTES},
                consent_source="",
            )
            for row, record in zip(frame.index, records)
        ],
        batch_size=2000,
        ignore_conflicts=True,
    )
    ids = dict(Customer.objects.filter(external_id__startswith="hillstrom-").values_list("external_id", "id"))
    return [ids[f"hillstrom-{row}"] for row in frame.index]


def _campaign(frame, customer_ids):
    user, _ = get_user_model().objects.get_or_create(username="hillstrom-import", defaults={"is_active": False})
    audience, _ = Audience.objects.get_or_create(
        name="Hillstrom customers (imported)", defaults={"description": "Everyone; kept for the imported test."}
    )
    promotion = Promotion.objects.create(
        name="Hillstrom e-mail (imported)",
        description="The e-mail of the 2008 test; no offer recorded.",
        historical=True,
        starts_at=SEND_AT,
        ends_at=SEND_AT + timedelta(days=14),
    )
    campaign = Campaign.objects.create(
        name=CAMPAIGN,
        audience=audience,
        holdout_percent=Decimal("33.33"),
        measured_response=Campaign.Response.VISIT,
        created_by=user,
    )
    campaign.promotions.add(promotion)
    segments = frame["segment"].to_numpy()
    control = [c for c, s in zip(customer_ids, segments) if s == CONTROL]
    batches = []
    for number, (segment, label) in enumerate(BATCHES, start=1):
        treated = [c for c, s in zip(customer_ids, segments) if s == segment]
        batch_id = batch_import_sent(
            campaign=campaign,
            number=number,
            by=user,
            settings=replace(BatchSettings.of_campaign(campaign), label=label, source=SOURCE),
            comment=f"Hillstrom's {segment} group, sent {SEND_AT:%Y-%m-%d}",
            summary={"recipients": len(treated), "excluded": {Recipient.Reason.HOLDOUT: len(control)}},
            generated_at=SEND_AT,
            send_started_at=SEND_AT,
            sent_at=SEND_AT,
        )
        batch = Batch.objects.get(pk=batch_id)
        sent = dict(
            outcome=Recipient.Outcome.RECIPIENT, send_status=Recipient.SendStatus.SENT, sent_at=SEND_AT
        )  # fmt: skip
        held = dict(outcome=Recipient.Outcome.EXCLUDED, reason=Recipient.Reason.HOLDOUT)
        Recipient.objects.bulk_create(
            [Recipient(batch=batch, customer_id=c, promotion=promotion, **sent) for c in treated]
            + [Recipient(batch=batch, customer_id=c, promotion=promotion, **held) for c in control],
            batch_size=2000,
        )
        batches.append(batch)
    return batches


def _events(frame, customer_ids):
    events = []
    rows = zip(frame.index, customer_ids, frame["visit"], frame["conversion"], frame["spend"])
    for row, customer_id, visit, conversion, spend in rows:
        at = _visit_time(row)
        common = dict(customer_id=customer_id, source=SOURCE, received_at=timezone.now())
        if visit:
            events.append(Event(type=EventType.VIEW, occurred_at=at, client_event_id=f"{row}-visit", **common))
        if conversion:
            events.append(
                Event(
                    type=EventType.PURCHASE,
                    value=Decimal(str(round(float(spend), 2))),
                    occurred_at=at + timedelta(minutes=30),
                    client_event_id=f"{row}-purchase",
                    **common,
                )
            )
    created = Event.objects.bulk_create(events, batch_size=2000)
    ids = [e.id for e in created]
    purchases = sum(e.type == EventType.PURCHASE for e in created)
    return min(ids), max(ids), len(created) - purchases, purchases
