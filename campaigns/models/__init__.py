"""Promotions, audiences, campaigns, push batches and their messages.

Split by subdomain: promotions.py (offers and their codes), audiences.py (segments),
campaigns.py (what to send to whom, how often), batches.py (one generated push, its recipients,
its audit log), tracking.py (what happened after sending), stats.py (aggregates and uplift).
"""

from campaigns.models.audiences import Audience, AudienceSummary, PurchaseDay, PurchaseTotal
from campaigns.models.batches import Batch, BatchEvent, GenerationChunk, Recipient
from campaigns.models.campaigns import Campaign
from campaigns.models.promotions import Promotion, PromotionCode
from campaigns.models.stats import BatchDailyStats, BatchUplift, UpliftModel
from campaigns.models.tracking import Conversion, MessageEvent

__all__ = [
    "Audience",
    "AudienceSummary",
    "Batch",
    "BatchDailyStats",
    "BatchEvent",
    "BatchUplift",
    "Campaign",
    "Conversion",
    "GenerationChunk",
    "MessageEvent",
    "Promotion",
    "PromotionCode",
    "PurchaseDay",
    "PurchaseTotal",
    "Recipient",
    "UpliftModel",
]
