"""The batch state machine: `batch_transition` is the one service that changes a batch's status.

It checks the move against `Batch.TRANSITIONS`, locks the row, writes the status and the fields that go
with it, and writes the BatchEvent the table names, all in one transaction. The services below it add who
may do what (permissions, four eyes) and what the batch must be (not stale, no template failure).
Follow-up work (generating a requested batch) goes through the outbox (promo_site/outbox.py), so this
module imports no task.
"""

import secrets

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from campaigns.batch_settings import BatchSettings
from campaigns.models import Batch, BatchEvent, Campaign
from promo_site.outbox import outbox_enqueue

Status = Batch.Status
Action = BatchEvent.Action


def campaign_blockers(campaign):
    """Reasons a new batch of this campaign cannot be generated now (empty when it can)."""
    problems = []
    promotions = list(campaign.promotions.all())
    if not promotions:
        problems.append("The campaign has no candidate promotion.")
    usable = 0
    for promotion in promotions:
        reason = promotion.unusable_reason()
        if reason:
            problems.append(f"Promotion '{promotion.name}' cannot be offered: {reason}.")
        else:
            usable += 1
    if promotions and not usable:
        problems.append("None of the campaign's promotions can be offered.")
    from recommender.models import ModelVersion

    if not ModelVersion.objects.active().exists():
        problems.append("No model version is active: train one and activate it (Models).")
    if Batch.objects.filter(campaign=campaign, status=Status.GENERATING).exists():
        problems.append("A batch of this campaign is being generated already.")
    return problems


def batch_request(*, campaign: Campaign, by) -> int:
    """Create a batch in `generating` with the campaign's settings frozen, and queue its generation (through
    the outbox, in the same transaction). Returns the batch's id; ValidationError if it cannot be made."""
    if not by.has_perm("campaigns.add_batch"):
        raise PermissionDenied("You may not generate batches.")
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
        problems = [p for p in campaign_blockers(campaign) if "cannot be offered" not in p]
        if problems:
            raise ValidationError(problems)
        number = (campaign.batches.aggregate(n=Max("number"))["n"] or 0) + 1
        batch = Batch.objects.create(
            campaign=campaign,
            number=number,
            created_by=by,
            seed=secrets.randbits(62),
            settings_snapshot=BatchSettings.of_campaign(campaign).to_json(),
            progress={"phase": "queued", "done": 0, "total": 0},
        )
        BatchEvent.objects.create(batch=batch, action=Action.REQUESTED, by=by)
        outbox_enqueue("campaigns.tasks.generate_batch", batch.id)
    return batch.id


def batch_import_sent(*, campaign: Campaign, number, by, settings: BatchSettings, comment, **fields) -> int:
    """A batch that was sent outside promo_site (a historical data set): created as sent, with its
    audit row. Returns its id."""
    with transaction.atomic():
        batch = Batch.objects.create(
            campaign=campaign,
            number=number,
            status=Status.SENT,
            seed=0,
            settings_snapshot=settings.to_json(),
            created_by=by,
            **fields,
        )
        BatchEvent.objects.create(batch=batch, action=Action.IMPORTED, by=by, comment=comment)
    return batch.id


class BatchStateError(ValidationError):
    """The action is not allowed from the batch's current status (Batch.TRANSITIONS)."""


def batch_transition(batch_id, action, *, by=None, comment="", **fields) -> Batch:
    """Do `action` (a key of Batch.TRANSITIONS, the BatchEvent it writes) on a batch if its current status
    allows it: the new status and `fields` (F() expressions allowed) and the audit row, in one transaction
    with a row lock. BatchStateError naming the state when the table does not allow it."""
    sources, to = Batch.TRANSITIONS[action]
    with transaction.atomic():
        batch = Batch.objects.select_for_update().get(pk=batch_id)
        if batch.status not in sources:
            label = Action(action).label.lower()
            raise BatchStateError(f"Batch {batch} is {batch.get_status_display()}: it cannot be {label}.")
        Batch.objects.filter(pk=batch_id).update(status=to, **fields)
        BatchEvent.objects.create(batch_id=batch_id, action=action, by=by, comment=comment)
    batch.refresh_from_db()
    return batch


def decision_blockers(batch, user):
    """Why `user` may not decide on (approve or reject) `batch` now: who they are and the batch's state."""
    problems = []
    if not user.has_perm("campaigns.approve_batch"):
        problems.append("You do not have the approve permission.")
    if user.pk in (batch.created_by_id, batch.campaign.created_by_id):
        problems.append("Four eyes: the person who created the campaign or generated the batch cannot approve it.")
    if batch.status != Status.GENERATED:
        problems.append(f"The batch is {batch.get_status_display()}, not in review.")
    return problems


def approval_blockers(batch, user):
    """Why `user` may not approve `batch` now (empty when they may): the decision's blockers, then the content's."""
    problems = decision_blockers(batch, user)
    if batch.render_failures:
        problems.append(f"The message template failed for {batch.render_failures} recipient(s); fix it and regenerate.")
    if batch.status == Status.GENERATED and batch_is_stale(batch):
        problems.append("The campaign or a promotion changed after this batch was generated; generate a new batch.")
    return problems


def batch_is_stale(batch):
    """The campaign or one of its promotions changed since the batch's settings were frozen."""
    frozen = batch.settings
    if frozen.campaign_version != batch.campaign.version:
        return True
    current = {p.id: p.version for p in batch.campaign.promotions.all()}
    return current != {p.id: p.version for p in frozen.promotions}


def batch_approve(*, batch: Batch, by, comment=""):
    problems = approval_blockers(batch, by)
    if problems:
        raise PermissionDenied(" ".join(problems))
    return _decide(batch, Action.APPROVED, by=by, comment=comment)


def batch_reject(*, batch: Batch, by, comment):
    # A batch that cannot be approved (a template failure, a stale snapshot) can always be rejected.
    problems = decision_blockers(batch, by)
    if problems:
        raise PermissionDenied(" ".join(problems))
    if not comment.strip():
        raise ValidationError("Say why the batch is rejected (the comment is required).")
    return _decide(batch, Action.REJECTED, by=by, comment=comment)


def _decide(batch, action, *, by, comment):
    fields = {"decided_by": by, "decided_at": timezone.now(), "decision_comment": comment}
    return batch_transition(batch.id, action, by=by, comment=comment, **fields)


def batch_cancel(*, batch: Batch, by, comment=""):
    if not by.has_perm("campaigns.change_batch"):
        raise PermissionDenied("You may not cancel batches.")
    return batch_transition(batch.id, Action.CANCELLED, by=by, comment=comment)


def batches_void_approvals(*, campaign_ids, by=None, why):
    """A campaign or promotion changed: approved batches not yet sending lose their approval."""
    voided = []
    for batch_id in Batch.objects.filter(campaign_id__in=campaign_ids, status=Status.APPROVED).values_list(
        "id", flat=True
    ):
        try:
            voided.append(batch_transition(batch_id, Action.VOIDED, by=by, comment=why))
        except BatchStateError:
            pass  # it started sending in between: too late to void
    return voided
