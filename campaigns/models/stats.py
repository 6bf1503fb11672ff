"""Measurement: the dashboard's aggregates per batch and day, each batch's treated-vs-holdout figures,
and the trained uplift models a campaign can target with."""

from django.conf import settings
from django.db import models

from campaigns.models.batches import Batch
from promo_site.jobs import Job


class BatchDailyStats(models.Model):
    """One batch's funnel and money on one day (UTC), rebuilt from the raw rows by stats_refresh.

    A recipient counts once per stage, on the day of its first human event of that stage, so the days of
    a batch add up to its distinct totals. Revenue, discount and margin are those of its attributed
    conversions on that day (margin at list price: see docs/ARCHITECTURE.md, "Attribution").
    """

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="daily_stats")
    day = models.DateField()
    targeted = models.PositiveIntegerField(default=0)
    sent = models.PositiveIntegerField(default=0)
    delivered = models.PositiveIntegerField(default=0)
    opened = models.PositiveIntegerField(default=0)
    clicked = models.PositiveIntegerField(default=0)
    unsubscribed = models.PositiveIntegerField(default=0)
    not_interested = models.PositiveIntegerField(default=0)
    converted = models.PositiveIntegerField(default=0)
    conversions = models.PositiveIntegerField(default=0)
    revenue = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    discount = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    margin = models.DecimalField(max_digits=14, decimal_places=2, default=0)

    class Meta:
        ordering = ["batch", "day"]
        verbose_name_plural = "batch daily stats"
        constraints = [models.UniqueConstraint(fields=["batch", "day"], name="batchdailystats_once")]

    def __str__(self):
        return f"{self.batch_id} on {self.day}"


class BatchUplift(models.Model):
    """Sufficient statistics of a batch's comparison, per group: enough to compute every interval at render.

    groups = {"treated" | "holdout" | "global_holdout": {"n", "responders", "revenue", "revenue_sq",
    "profit", "profit_sq"}}: per-customer outcomes in [window_start, window_end) summed, and their squares.
    """

    batch = models.OneToOneField(Batch, on_delete=models.CASCADE, related_name="uplift")
    response = models.CharField(max_length=24, help_text="what counted as a response (Campaign.Response)")
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    groups = models.JSONField(default=dict)
    computed_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"uplift of {self.batch_id}"


class UpliftModel(Job):
    """One training of the uplift model on past batches and their holdouts (campaigns.tasks.train_uplift_model).

    queued -> training -> ready | failed, a long job (promo_site/jobs.py): UPLIFT_TRAINING_JOB in
    campaigns/services/uplift_targeting.py. The newest ready one is the one campaigns target with.
    """

    class Status(models.TextChoices):
        QUEUED = "queued"
        TRAINING = "training"
        READY = "ready"
        FAILED = "failed"

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    artifact = models.CharField(max_length=300, blank=True, help_text="joblib file under MEDIA_ROOT")
    chosen = models.CharField(max_length=64, blank=True)
    features = models.JSONField(default=list, blank=True)
    scores = models.JSONField(default=dict, blank=True, help_text="validation scores of every candidate")
    batches = models.JSONField(default=list, blank=True, help_text="ids of the batches it learned from")
    n_treated = models.PositiveIntegerField(default=0)
    n_control = models.PositiveIntegerField(default=0)
    responders_treated = models.PositiveIntegerField(default=0, help_text="treated customers who responded")
    responders_control = models.PositiveIntegerField(default=0, help_text="holdout customers who responded")
    responses = models.JSONField(
        default=list, blank=True, help_text="the measured responses of the campaigns it learned from"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"uplift model {self.id} ({self.status})"
