"""What a change does to batches generated before it, decided in one place.

A batch is generated from its campaign, the campaign's audience, its candidate promotions and their items
(frozen in the batch's settings with the versions they had). After any change to one of those:

- a batch in review goes stale: its frozen versions no longer match, so it cannot be approved
  (services/batches.py `batch_is_stale`); a change that a row's own save does not version (an audience
  edit, a many-to-many edit) raises the version here;
- an approved batch that has not started sending loses its approval (approved -> voided, with the user who
  made the change in its audit row when the admin set one).

The receivers in campaigns/signals.py (saves, many-to-many edits from either side, the admin's forms and
inlines, which save through the same models) all call `approvals_void_after_change`.
"""

from django.db.models import F

from campaigns.models import Audience, Campaign, Promotion
from campaigns.services.batches import batches_void_approvals


def approvals_void_after_change(*, changed, why, by=None, versioned=False):
    """`changed`: the Campaign, Audience or Promotion rows that changed (one kind per call); `versioned`: their
    own save raised their version already. Returns the ids of the batches whose approval was voided."""
    changed = list(changed)
    if not changed:
        return []
    kind = type(changed[0])
    ids = [row.pk for row in changed]
    if not versioned and kind in (Campaign, Promotion):
        kind.objects.filter(pk__in=ids).update(version=F("version") + 1)
    campaign_ids = _campaigns_of(kind, ids)
    if kind is Audience:
        Campaign.objects.filter(pk__in=campaign_ids).update(version=F("version") + 1)
    return [batch.id for batch in batches_void_approvals(campaign_ids=campaign_ids, by=by, why=why)]


def _campaigns_of(kind, ids):
    if kind is Campaign:
        return ids
    if kind is Audience:
        return list(Campaign.objects.filter(audience_id__in=ids).values_list("id", flat=True))
    if kind is Promotion:
        return list(Campaign.objects.filter(promotions__in=ids).distinct().values_list("id", flat=True))
    raise TypeError(f"{kind.__name__} changes do not concern batches")
