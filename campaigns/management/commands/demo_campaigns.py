"""A few promotions, audiences and a campaign on the demo shop, so a newcomer has something to open."""

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from campaigns.models import Audience, Campaign, Promotion
from campaigns.services.codes import codes_generate

PROMOTIONS = [
    dict(name="15% off yogurt", kind="percent_off", value=15, categories=["GROCERY > YOGURT"], code_mode="pool"),
    dict(
        name="2 off soft drinks", kind="amount_off", value=2, categories=["GROCERY > SOFT DRINKS"], shared_code="FIZZ2"
    ),
    dict(
        name="Buy 2 snacks, get 1 free",
        kind="buy_x_get_y",
        buy_quantity=2,
        get_quantity=1,
        categories=["GROCERY > BAG SNACKS"],
        shared_code="SNACK3",
    ),
]
AUDIENCES = [
    (
        "Regulars who bought in the last month",
        {
            "match": "all",
            "rules": [
                {"field": "recency_days", "op": "lte", "value": 30},
                {"field": "frequency", "op": "gte", "value": 10, "days": 365},
            ],
        },
    ),
    (
        "Lapsed: no purchase in 60 days",
        {"match": "all", "rules": [{"field": "recency_days", "op": "gte", "value": 60}]},
    ),
]


class Command(BaseCommand):
    help = "Create demo promotions, audiences and a campaign (once; does nothing when promotions exist)."

    def handle(self, *args, **options):
        if Promotion.objects.filter(historical=False).exists():
            self.stdout.write("Demo campaigns already there.")
            return
        marketer = get_user_model().objects.filter(username="marketer").first()
        ends = timezone.now() + timedelta(days=30)
        with transaction.atomic():
            promotions = []
            for fields in PROMOTIONS:
                fields = {"code_mode": "shared", **fields}
                promotions.append(Promotion.objects.create(ends_at=ends, created_by=marketer, **fields))
            codes_generate(promotion=promotions[0], count=3000, prefix="YOG-")
            audiences = [Audience.objects.create(name=n, rules=r, created_by=marketer) for n, r in AUDIENCES]
            campaign = Campaign.objects.create(name="Weekly picks", audience=audiences[0], created_by=marketer)
            campaign.promotions.set(promotions)
        self.stdout.write(
            f"Demo campaign '{campaign}' with {len(promotions)} promotions; generate a batch in the admin."
        )
