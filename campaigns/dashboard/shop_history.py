"""The shop's own campaigns before promo_site (ExternalCampaign / ExternalCoupon, e.g. the Complete Journey's):
whom each targeted, the coupons redeemed, and how targeted and untargeted households bought in its window.

Observational, not randomised: the shop chose whom to target (usually its best customers), so targeted
households buying more than untargeted ones says who was chosen as much as what the campaign did. The page
says so; promo_site's own batches, with their random holdout, are the ones that measure an effect.

Per campaign, over [start_date, end_date] (whole days, UTC): households targeted; coupons; redemptions
(coupon_redemption events whose `campaign_id` attribute names it, as the Complete Journey's import writes
them); for the targeted and the untargeted households (every other customer who ever bought), the share
who bought in the window and the spend per household. One GROUP BY per campaign (its window of events
through the time index, split into targeted and not in Python), cached for a day under the campaigns'
count and last id: 2.6 s uncached on 1.47M purchases and 30 campaigns (2 cores), 0.01 s cached
(`python bench/shop_history.py`, docs/benchmarks.md).
"""

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from django.core.cache import cache
from django.db.models import Count, Exists, OuterRef, Sum

from shop.models import Customer, Event, EventType, ExternalCampaign

CACHE_SECONDS = 24 * 3600  # the history changes when it is imported again, which makes a new key


@dataclass
class Group:
    households: int
    buyers: int
    spend: float

    @property
    def buying_share(self):
        """The share of the group who bought in the window, in percent."""
        return self.buyers / self.households * 100 if self.households else None

    @property
    def spend_per_household(self):
        return self.spend / self.households if self.households else None


@dataclass
class HistoryRow:
    campaign: ExternalCampaign
    coupons: int
    redemptions: int
    targeted: Group
    untargeted: Group

    @property
    def share_difference(self):
        """Targeted minus untargeted share who bought, in percentage points."""
        t, u = self.targeted.buying_share, self.untargeted.buying_share
        return None if t is None or u is None else t - u

    @property
    def spend_difference(self):
        t, u = self.targeted.spend_per_household, self.untargeted.spend_per_household
        return None if t is None or u is None else t - u


def shop_history_rows():
    """One HistoryRow per external campaign, oldest first (cached: see the module's docstring)."""
    campaigns = list(ExternalCampaign.objects.annotate(n_targeted=Count("targeted", distinct=True)))
    if not campaigns:
        return []
    key = f"shop-history:{len(campaigns)}:{max(c.id for c in campaigns)}"
    rows = cache.get(key)
    if rows is None:
        rows = _rows(campaigns)
        cache.set(key, rows, CACHE_SECONDS)
    return rows


def _rows(campaigns):
    bought = Event.objects.filter(customer_id=OuterRef("pk"), type=EventType.PURCHASE)
    buyers_ever = set(Customer.objects.filter(Exists(bought)).values_list("id", flat=True))
    Targeted = ExternalCampaign.targeted.through
    redemptions = _redemptions()
    coupons = dict(ExternalCampaign.objects.annotate(n=Count("coupons")).values_list("id", "n"))
    rows = []
    for campaign in sorted(campaigns, key=lambda c: (c.start_date or datetime.min.date(), c.id)):
        chosen = set(Targeted.objects.filter(externalcampaign_id=campaign.id).values_list("customer_id", flat=True))
        targeted, all_buyers = _window(campaign, chosen)
        rows.append(
            HistoryRow(
                campaign=campaign,
                coupons=coupons.get(campaign.id, 0),
                redemptions=redemptions.get((campaign.source, campaign.external_id), 0),
                targeted=Group(campaign.n_targeted, targeted["buyers"], float(targeted["spend"] or 0)),
                untargeted=Group(
                    len(buyers_ever - chosen),
                    all_buyers["buyers"] - targeted["buyers"],
                    float((all_buyers["spend"] or 0) - (targeted["spend"] or 0)),
                ),
            )
        )
    return rows


def _window(campaign, targeted):
    """({buyers, spend} of the targeted, {buyers, spend} of everyone) in the campaign's days."""
    empty = {"buyers": 0, "spend": 0}
    if campaign.start_date is None or campaign.end_date is None:
        return empty, empty
    start = datetime.combine(campaign.start_date, time.min, tzinfo=UTC)
    end = datetime.combine(campaign.end_date + timedelta(days=1), time.min, tzinfo=UTC)
    # One GROUP BY customer over the window (the time index), split in Python: a filtered COUNT(DISTINCT)
    # with the targeted households as a subquery cost about four times as much.
    spend = (
        Event.objects.filter(type=EventType.PURCHASE, occurred_at__gte=start, occurred_at__lt=end)
        .values("customer_id")
        .annotate(spend=Sum("value"))
        .values_list("customer_id", "spend")
    )
    everyone, chosen = {"buyers": 0, "spend": 0}, {"buyers": 0, "spend": 0}
    for customer_id, total in spend:
        for group in (everyone, chosen) if customer_id in targeted else (everyone,):
            group["buyers"] += 1
            group["spend"] += total or 0
    return chosen, everyone


def _redemptions():
    """{(source, campaign external id): coupon redemptions} from the events' `campaign_id` attribute."""
    counts = {}
    rows = (
        Event.objects.filter(type=EventType.COUPON_REDEMPTION, attributes__has_key="campaign_id")
        .values_list("source", "attributes__campaign_id")
        .annotate(n=Count("id"))
    )
    for source, campaign_id, n in rows:
        key = (source, str(campaign_id))
        counts[key] = counts.get(key, 0) + n
    return counts
