"""The shop's data as it comes in: customers, items, events, and the shop's own campaign history."""

import operator
import zoneinfo
from functools import reduce

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from promo_site.jobs import Job


def validate_time_zone(value):
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not an IANA time zone name (e.g. 'Europe/Berlin').")


# Contactability, the one definition: why a customer may not be sent a marketing message, checked in this
# order (the first that holds is the reason), each as a query filter and as a test of a loaded customer.
CONTACT_EXCLUSIONS = (
    ("no_consent", models.Q(marketing_consent=False), lambda c: not c.marketing_consent),
    ("unsubscribed", models.Q(unsubscribed_at__isnull=False), lambda c: c.unsubscribed_at is not None),
    ("suppressed", models.Q(suppressed=True), lambda c: c.suppressed),
    ("no_email", models.Q(email=""), lambda c: not c.email),
)


class CustomerQuerySet(models.QuerySet):
    def contactable(self):
        """Customers a marketing message may go to: consented, not unsubscribed, not suppressed, with an e-mail."""
        return self.exclude(reduce(operator.or_, (q for _reason, q, _test in CONTACT_EXCLUSIONS)))

    def contact_counts(self):
        """{total, contactable, excluded: {reason: n}}: each excluded customer counted under their first reason."""
        earlier, counts = None, {}
        for reason, condition, _test in CONTACT_EXCLUSIONS:
            counts[f"n_{reason}"] = models.Count("id", filter=condition if earlier is None else condition & ~earlier)
            earlier = condition if earlier is None else earlier | condition
        row = self.aggregate(total=models.Count("id"), **counts)
        excluded = {reason: row[f"n_{reason}"] for reason, *_ in CONTACT_EXCLUSIONS}
        return {"total": row["total"], "contactable": row["total"] - sum(excluded.values()), "excluded": excluded}


class Customer(models.Model):
    external_id = models.CharField(max_length=64, unique=True, help_text="The shop's own customer id.")
    email = models.EmailField(blank=True, db_index=True)
    name = models.CharField(max_length=200, blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    demographics = models.JSONField(
        default=dict, blank=True, help_text="age, income, household_size, ... as the shop provides them."
    )
    marketing_consent = models.BooleanField(default=False)
    consent_at = models.DateTimeField(null=True, blank=True)
    consent_source = models.CharField(max_length=64, blank=True)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)
    suppressed = models.BooleanField(default=False, help_text="Hard bounce or complaint: never mailed again.")
    suppressed_reason = models.CharField(max_length=200, blank=True)
    time_zone = models.CharField(max_length=64, default="UTC", validators=[validate_time_zone])
    is_stub = models.BooleanField(
        default=False, help_text="Created because an event named it; details not yet received."
    )
    erased_at = models.DateTimeField(
        null=True, blank=True, help_text="Erased on request: a tombstone keeping only the external id."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = CustomerQuerySet.as_manager()

    class Meta:
        ordering = ["external_id"]
        permissions = [
            ("export_customer", "Can export everything held about a customer"),
            ("erase_customer", "Can erase a customer's personal data"),
        ]

    def __str__(self):
        return self.name or self.email or self.external_id

    def contact_exclusion(self):
        """Why this customer may not be sent a marketing message (a CONTACT_EXCLUSIONS reason), or ''."""
        return next((reason for reason, _q, test in CONTACT_EXCLUSIONS if test(self)), "")


class CustomerAudit(models.Model):
    """Who exported or erased a customer's data, when, and what it covered (the right of access and erasure)."""

    class Action(models.TextChoices):
        EXPORTED = "exported"
        ERASED = "erased"

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="audits")
    action = models.CharField(max_length=16, choices=Action.choices)
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    at = models.DateTimeField(default=timezone.now)
    detail = models.JSONField(default=dict, blank=True, help_text="rows exported or erased, by kind")

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self):
        return f"{self.action} customer {self.customer_id}"


class Item(models.Model):
    external_id = models.CharField(max_length=64, unique=True, help_text="The shop's own item id (SKU).")
    title = models.CharField(max_length=300, blank=True)
    category_path = models.CharField(
        max_length=300, blank=True, db_index=True, help_text="Levels separated by ' > ', broadest first."
    )
    brand = models.CharField(max_length=120, blank=True, db_index=True)
    price = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    cost = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    active = models.BooleanField(default=True)
    in_stock = models.BooleanField(default=True)
    image_url = models.URLField(max_length=500, blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    is_stub = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["external_id"]

    def __str__(self):
        return self.title or self.external_id

    @property
    def margin(self):
        if self.price is None or self.cost is None:
            return None
        return self.price - self.cost


class EventType(models.TextChoices):
    # A CharField with choices: a new type is one line here, with no table rewrite.
    VIEW = "view"
    CART = "cart"
    PURCHASE = "purchase"
    COUPON_REDEMPTION = "coupon_redemption", "coupon redemption"
    # The customer said "not interested" in an item (a link in a promotion message, or the shop's own button).
    NOT_INTERESTED = "not_interested", "not interested"


class Event(models.Model):
    # No database-level foreign keys: their per-row triggers cost 19 s of a 1.47M-row import on our 2-core
    # host (against 3 s for the rest of the write). The only bulk write path (services/event_store.py) joins
    # on existing customers and items, and deletes cascade through the ORM.
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="events", db_constraint=False, db_index=False
    )
    item = models.ForeignKey(
        Item,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="events",
        db_constraint=False,
        db_index=False,  # the composite indexes below lead with these columns
    )
    type = models.CharField(max_length=32, choices=EventType.choices)
    quantity = models.IntegerField(default=1)
    value = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    discount = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    occurred_at = models.DateTimeField()
    source = models.CharField(max_length=64)
    client_event_id = models.CharField(max_length=128)
    attributes = models.JSONField(null=True, blank=True)
    # The order (basket) the event belongs to, as the shop names it; None where the shop sends none (then a
    # customer's purchases at the same moment form one order: recommender.ml.baskets).
    order_id = models.CharField(max_length=128, null=True, blank=True)
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            # With the time: PostgreSQL's unique indexes of a partitioned table hold the partition key (migration
            # 0008). A retried event carries its time, and a file row's content id holds it already.
            models.UniqueConstraint(
                fields=["source", "client_event_id", "occurred_at"], name="event_unique_per_source"
            ),
            models.CheckConstraint(condition=models.Q(quantity__gte=0), name="event_quantity_not_negative"),
        ]
        indexes = [
            # A customer's history in time order: sequence building, segments, attribution.
            models.Index(fields=["customer", "occurred_at"], name="event_customer_time"),
            # "Who bought this item", segments by category or brand.
            models.Index(fields=["item"], name="event_item"),
            # "The lines of this order"; partial, so the many events without an order cost nothing.
            models.Index(fields=["order_id"], name="event_order", condition=models.Q(order_id__isnull=False)),
            # Stats and training windows by time: a BRIN index on PostgreSQL (migration 0002), nearly free
            # to maintain on an append-mostly table, where a B-tree cost 3 s of a 1.47M-row import.
        ]

    def __str__(self):
        return f"{self.type} by {self.customer_id} at {self.occurred_at:%Y-%m-%d %H:%M}"


class ImportRun(Job):
    """One import of a file (from the command line or an upload), with its outcome.

    A long job (promo_site/jobs.py): queued -> running -> done | failed; the lifecycle is IMPORT_JOB in
    shop/services/imports.py.
    """

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    kind = models.CharField(max_length=32, default="events")
    file = models.FileField(upload_to="imports/", blank=True)
    source_name = models.CharField(max_length=300, help_text="The file or data set imported.")
    options = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    rows_total = models.BigIntegerField(default=0)
    rows_stored = models.BigIntegerField(default=0)
    rows_duplicate = models.BigIntegerField(default=0)
    rows_rejected = models.BigIntegerField(default=0)
    customers_created = models.IntegerField(default=0)
    items_created = models.IntegerField(default=0)
    report = models.FileField(upload_to="import-reports/", blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.kind} import of {self.source_name} ({self.status})"


class ExternalCampaign(models.Model):
    """A campaign the shop ran before promo_site (e.g. the Complete Journey's), kept as history."""

    source = models.CharField(max_length=64)
    external_id = models.CharField(max_length=64)
    campaign_type = models.CharField(max_length=32, blank=True)
    start_date = models.DateField(null=True, blank=True)
    end_date = models.DateField(null=True, blank=True)
    targeted = models.ManyToManyField(Customer, blank=True, related_name="external_campaigns")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["source", "external_id"], name="external_campaign_unique")]
        ordering = ["source", "start_date"]

    def __str__(self):
        return f"{self.source} campaign {self.external_id}"


class ExternalCoupon(models.Model):
    """A coupon of an external campaign and the items it applied to."""

    campaign = models.ForeignKey(ExternalCampaign, on_delete=models.CASCADE, related_name="coupons")
    code = models.CharField(max_length=64)
    items = models.ManyToManyField(Item, blank=True, related_name="external_coupons")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["campaign", "code"], name="external_coupon_unique")]

    def __str__(self):
        return f"coupon {self.code}"
