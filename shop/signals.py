"""Signals the shop sends for the stages to its right (which shop itself never imports)."""

from django.dispatch import Signal

# Sent after an import stored a source's campaign history (ExternalCampaign / ExternalCoupon); kwargs: source.
history_imported = Signal()
