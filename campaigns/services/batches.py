"""The batch state machine: one service per transition, each in a transaction with its audit record."""

import secrets

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from campaigns.models import Batch, BatchEvent, Campaign

Status = Batch.Status
Action = BatchEvent.Action


def _audit(batch, action, by=None, comment=""):
    BatchEvent.objects.create(batch=batch, action=action, by=by, comment=comment)


def _snapshot(campaign):
    promotions = list(campaign.promotions.all())
    return {
        "campaign_version": campaign.version,
        "campaign": {
            "name": campaign.name,
            "audience_id": campaign.audience_id,
            "audience_rules": campaign.audience.rules,
            "subject_template": campaign.subject_template,
            "body_template": campaign.body_template,
            "items_per_message": campaign.items_per_message,
            "exclude_purchased": campaign.exclude_purchased,
            "holdout_percent": str(campaign.holdout_percent),
            "frequency_cap": [campaign.frequency_cap_messages, campaign.frequency_cap_days],
            "quiet_hours": [
                campaign.quiet_hours_start and campaign.quiet_hours_start.isoformat(),
                campaign.quiet_hours_end and campaign.quiet_hours_end.isoformat(),
            ],
            "send_at": campaign.send_at and campaign.send_at.isoformat(),
            "base_response_rate": str(campaign.base_response_rate),
        },
        "promotions": {str(p.id): {"name": p.name, "version": p.version} for p in promotions},
    }


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


def batch_request(*, campaign: Campaign, by):
    """Create a batch in `generating` and queue its generation; ValidationError if it cannot be made."""
    from campaigns.tasks import generate_batch

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
            settings_snapshot=_snapshot(campaign),
            progress={"phase": "queued", "done": 0, "total": 0},
        )
        _audit(batch, Action.REQUESTED, by)
        generate_batch.delay_on_commit(batch.id)
    return batch


def _transition(batch_id, *, allowed, to, action, by=None, comment="", **fields):
    """Conditional update from one of `allowed` to `to`; ValidationError naming the state when it is not."""
    with transaction.atomic():
        batch = Batch.objects.select_for_update().get(pk=batch_id)
        if batch.status not in allowed:
            raise ValidationError(f"Batch {batch} is {batch.get_status_display()}: it cannot be {action.label}.")
        batch.status = to
        for name, value in fields.items():
            setattr(batch, name, value)
        batch.save(update_fields=["status", *fields])
        _audit(batch, action, by, comment)
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
    snapshot = batch.settings_snapshot
    campaign = batch.campaign
    if snapshot.get("campaign_version") != campaign.version:
        return True
    current = {str(p.id): p.version for p in campaign.promotions.all()}
    return current != {key: value["version"] for key, value in snapshot.get("promotions", {}).items()}


def batch_approve(*, batch: Batch, by, comment=""):
    problems = approval_blockers(batch, by)
    if problems:
        raise PermissionDenied(" ".join(problems))
    return _decide(batch, by=by, to=Status.APPROVED, action=Action.APPROVED, comment=comment)


def batch_reject(*, batch: Batch, by, comment):
    # A batch that cannot be approved (a template failure, a stale snapshot) can always be rejected.
    problems = decision_blockers(batch, by)
    if problems:
        raise PermissionDenied(" ".join(problems))
    if not comment.strip():
        raise ValidationError("Say why the batch is rejected (the comment is required).")
    return _decide(batch, by=by, to=Status.REJECTED, action=Action.REJECTED, comment=comment)


def _decide(batch, *, by, to, action, comment):
    return _transition(
        batch.id,
        allowed=[Status.GENERATED],
        to=to,
        action=action,
        by=by,
        comment=comment,
        decided_by=by,
        decided_at=timezone.now(),
        decision_comment=comment,
    )


def batch_cancel(*, batch: Batch, by, comment=""):
    if not by.has_perm("campaigns.change_batch"):
        raise PermissionDenied("You may not cancel batches.")
    allowed = [Status.GENERATED, Status.APPROVED, Status.SENDING, Status.PAUSED]
    return _transition(batch.id, allowed=allowed, to=Status.CANCELLED, action=Action.CANCELLED, by=by, comment=comment)


def batches_void_approvals(*, campaign_ids, by=None, why):
    """A campaign or promotion changed: approved batches not yet sending lose their approval."""
    voided = []
    for batch_id in Batch.objects.filter(campaign_id__in=campaign_ids, status=Status.APPROVED).values_list(
        "id", flat=True
    ):
        try:
            voided.append(
                _transition(
                    batch_id, allowed=[Status.APPROVED], to=Status.VOIDED, action=Action.VOIDED, by=by, comment=why
                )
            )
        except ValidationError:
            pass  # it started sending in between: too late to void
    return voided
