"""Rows every app may use: the outbox of follow-up work (promo_site/outbox.py)."""

from django.db import models


class OutboxTask(models.Model):
    """A Celery task to run because of a committed change, written in the same transaction as the change.

    Dispatched once the transaction commits; if the broker is down then, the dispatcher (beat, every
    minute) sends it later. A rolled-back change takes its follow-up work with it.
    """

    task = models.CharField(max_length=200, help_text="The Celery task's registered name.")
    args = models.JSONField(default=list, blank=True)
    kwargs = models.JSONField(default=dict, blank=True)
    not_before = models.DateTimeField(help_text="The task runs no earlier than this (a countdown).")
    created_at = models.DateTimeField(auto_now_add=True)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Failed dispatches so far.")
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["created_at"], name="outbox_pending", condition=models.Q(dispatched_at__isnull=True)),
            models.Index(fields=["dispatched_at"], name="outbox_dispatched"),
        ]

    def __str__(self):
        return f"{self.task}{tuple(self.args)}"
