"""The shop's own past campaigns (ExternalCampaign) shown as past promotions, never offered again."""

from datetime import datetime, time

from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from campaigns.models import Promotion
from shop.models import ExternalCampaign, ExternalCoupon


def _aware(day, end=False):
    if day is None:
        return timezone.now()
    return timezone.make_aware(datetime.combine(day, time.max if end else time.min), timezone.get_default_timezone())


def promotions_from_history(*, source):
    """One historical Promotion per external campaign of `source` that has none yet; returns how many were made."""
    done = set(
        Promotion.objects.filter(external_campaign__source=source).values_list("external_campaign_id", flat=True)
    )
    made = 0
    campaigns = ExternalCampaign.objects.filter(source=source).exclude(id__in=done)
    campaigns = campaigns.annotate(
        n_coupons=Count("coupons", distinct=True), n_targeted=Count("targeted", distinct=True)
    )
    Covered = Promotion.items.through
    for campaign in campaigns.iterator(chunk_size=200):
        with transaction.atomic():
            promotion = Promotion.objects.create(
                name=f"{source} campaign {campaign.external_id}"
                + (f" ({campaign.campaign_type})" if campaign.campaign_type else ""),
                description=(
                    f"Imported history: {campaign.n_coupons} coupon(s), {campaign.n_targeted} customer(s) targeted. "
                    "The discount of each coupon is in its redemption events."
                ),
                kind=Promotion.Kind.AMOUNT_OFF,
                starts_at=_aware(campaign.start_date),
                ends_at=_aware(campaign.end_date, end=True),
                code_mode=Promotion.CodeMode.SHARED,
                historical=True,
                external_campaign=campaign,
            )
            items = ExternalCoupon.items.through.objects.filter(externalcoupon__campaign=campaign)
            item_ids = set(items.values_list("item_id", flat=True))
            Covered.objects.bulk_create(
                [Covered(promotion_id=promotion.id, item_id=i) for i in item_ids], batch_size=5000
            )
        made += 1
    return made
