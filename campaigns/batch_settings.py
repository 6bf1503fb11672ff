"""A batch's settings: the campaign and its promotions frozen when the batch is requested.

Generation, the send schedule and the review page all read this one object (`batch.settings`), never
the live campaign: a campaign edited after the request changes nothing for the batch (it only makes an
approval stale or voids it, campaigns/approvals.py). Stored as JSON in `Batch.settings_snapshot`; the
layout is that of the snapshots stored before this object existed, so every stored batch reads back.
"""

from dataclasses import dataclass, field
from datetime import datetime, time
from decimal import Decimal


@dataclass(frozen=True)
class PromotionRef:
    id: int
    name: str
    version: int


@dataclass(frozen=True)
class BatchSettings:
    campaign_version: int | None = None
    name: str = ""
    audience_id: int | None = None
    audience_rules: dict = field(default_factory=dict)
    subject_template: str = ""
    body_template: str = ""
    items_per_message: int = 4
    item_kinds: str = "both"  # recommender.models.ItemChoice: buy_again, new or both
    holdout_percent: Decimal = Decimal("0")
    frequency_cap_messages: int = 3
    frequency_cap_days: int = 7
    quiet_hours_start: time | None = None
    quiet_hours_end: time | None = None
    send_at: datetime | None = None
    base_response_rate: Decimal = Decimal("0.05")
    targeting: str = "response"
    only_where_it_pays: bool = False
    target_percent: Decimal = Decimal("100")
    promotions: tuple[PromotionRef, ...] = ()
    label: str = ""  # an imported batch's name for itself (the Hillstrom import) ...
    source: str = ""  # ... and the data set it came from

    @classmethod
    def of_campaign(cls, campaign):
        """The campaign and its candidate promotions as they are now."""
        return cls(
            campaign_version=campaign.version,
            name=campaign.name,
            audience_id=campaign.audience_id,
            audience_rules=campaign.audience.rules,
            subject_template=campaign.subject_template,
            body_template=campaign.body_template,
            items_per_message=campaign.items_per_message,
            item_kinds=campaign.item_kinds,
            holdout_percent=Decimal(str(campaign.holdout_percent)),
            frequency_cap_messages=campaign.frequency_cap_messages,
            frequency_cap_days=campaign.frequency_cap_days,
            quiet_hours_start=campaign.quiet_hours_start,
            quiet_hours_end=campaign.quiet_hours_end,
            send_at=campaign.send_at,
            base_response_rate=Decimal(str(campaign.base_response_rate)),
            targeting=campaign.targeting,
            only_where_it_pays=campaign.only_where_it_pays,
            target_percent=Decimal(str(campaign.target_percent)),
            promotions=tuple(PromotionRef(p.id, p.name, p.version) for p in campaign.promotions.order_by("id")),
        )

    @property
    def promotion_ids(self):
        return [p.id for p in self.promotions]

    @property
    def item_kinds_label(self):
        from recommender.models import ItemChoice

        return ItemChoice(self.item_kinds).label

    @property
    def holdout_share(self):
        return float(self.holdout_percent) / 100

    @property
    def target_share(self):
        return float(self.target_percent) / 100

    def to_json(self):
        return {
            "campaign_version": self.campaign_version,
            "campaign": {
                "name": self.name,
                "audience_id": self.audience_id,
                "audience_rules": self.audience_rules,
                "subject_template": self.subject_template,
                "body_template": self.body_template,
                "items_per_message": self.items_per_message,
                "item_kinds": self.item_kinds,
                "holdout_percent": str(self.holdout_percent),
                "frequency_cap": [self.frequency_cap_messages, self.frequency_cap_days],
                "quiet_hours": [_iso(self.quiet_hours_start), _iso(self.quiet_hours_end)],
                "send_at": _iso(self.send_at),
                "base_response_rate": str(self.base_response_rate),
                "targeting": self.targeting,
                "only_where_it_pays": self.only_where_it_pays,
                "target_percent": str(self.target_percent),
            },
            "promotions": {str(p.id): {"name": p.name, "version": p.version} for p in self.promotions},
            **({"label": self.label, "source": self.source} if self.label or self.source else {}),
        }

    @classmethod
    def from_json(cls, data):
        data = data or {}
        campaign = data.get("campaign", {})
        defaults = cls()
        cap = campaign.get("frequency_cap") or [defaults.frequency_cap_messages, defaults.frequency_cap_days]
        quiet = campaign.get("quiet_hours") or [None, None]
        return cls(
            campaign_version=data.get("campaign_version"),
            name=campaign.get("name", ""),
            audience_id=campaign.get("audience_id"),
            audience_rules=campaign.get("audience_rules") or {},
            subject_template=campaign.get("subject_template", ""),
            body_template=campaign.get("body_template", ""),
            items_per_message=campaign.get("items_per_message", defaults.items_per_message),
            # Snapshots before the choice had "exclude purchased": on meant only new items.
            item_kinds=campaign.get("item_kinds") or ("new" if campaign.get("exclude_purchased") else "both"),
            holdout_percent=Decimal(campaign.get("holdout_percent", "0")),
            frequency_cap_messages=cap[0],
            frequency_cap_days=cap[1],
            quiet_hours_start=_parse(time, quiet[0]),
            quiet_hours_end=_parse(time, quiet[1]),
            send_at=_parse(datetime, campaign.get("send_at")),
            base_response_rate=Decimal(campaign.get("base_response_rate", str(defaults.base_response_rate))),
            targeting=campaign.get("targeting", defaults.targeting),
            only_where_it_pays=campaign.get("only_where_it_pays", False),
            target_percent=Decimal(campaign.get("target_percent", "100")),
            promotions=tuple(
                PromotionRef(int(key), value["name"], value["version"])
                for key, value in (data.get("promotions") or {}).items()
            ),
            label=data.get("label", ""),
            source=data.get("source", ""),
        )


def _iso(value):
    return value.isoformat() if value is not None else None


def _parse(kind, text):
    return kind.fromisoformat(text) if text else None
