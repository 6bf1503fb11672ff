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
