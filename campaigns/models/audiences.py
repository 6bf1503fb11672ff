"""Audiences: segments of customers, defined by rules (see campaigns/audiences.py for the rule language)."""

from django.conf import settings
from django.db import models


class Audience(models.Model):
    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    rules = models.JSONField(
        default=dict,
        blank=True,
        help_text='A rule group: {"match": "all"|"any", "rules": [rule or group, ...]}; empty means everyone.',
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def clean(self):
        from campaigns.audiences import rules_validate

        rules_validate(self.rules)


class PurchaseDay(models.Model):
    """One customer's purchases on one UTC day, summed from shop_event for the behaviour rules' counts.

    Derived data (campaigns/purchase_summary.py keeps it): it covers the purchase events with ids up to
    AudienceSummary.watermark; a count adds the events above it from shop_event itself. spend is the sum of
    the values present, nv how many there were (a day whose purchases all lack a value spends NULL, as
    SUM(value) over the events does). Rows whose purchases were all deleted stay with n = 0.
    """

    pk = models.CompositePrimaryKey("customer_id", "day")
    customer_id = models.BigIntegerField()  # no foreign key: derived rows, deleted with the events (a trigger)
    day = models.DateField()
    n = models.IntegerField()
    nv = models.IntegerField()
    spend = models.DecimalField(max_digits=20, decimal_places=2)

    class Meta:
        indexes = [
            # The window's rows read from the index alone (VACUUM after a refresh keeps them all-visible).
            models.Index(fields=["day"], include=["customer_id", "n", "nv", "spend"], name="purchase_day_window")
        ]


class PurchaseTotal(models.Model):
    """One customer's purchases of all time, as PurchaseDay's rows add up (ids up to the same watermark): a
    window that holds most of the history is counted as this less the days before it, not as its days."""

    customer_id = models.BigIntegerField(primary_key=True)
    n = models.IntegerField()
    nv = models.IntegerField()
    spend = models.DecimalField(max_digits=20, decimal_places=2)


class AudienceSummary(models.Model):
    """The one row saying how far PurchaseDay reaches: every purchase with id <= watermark is in it."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    watermark = models.BigIntegerField(default=0)
    refreshed_at = models.DateTimeField(null=True, blank=True)
