"""Any change to a campaign or its promotions after approval voids the approval (and marks review batches stale).

Also: the providers' tracking webhooks arrive here through anymail's `tracking` signal.

Counters that attribution keeps on a promotion (redemptions_used, discount_used) are written with
QuerySet.update(), which sends no signal: spending budget is not a change of the promotion.
"""

import contextvars

from anymail.signals import tracking
from django.db.models import F
from django.db.models.signals import m2m_changed, post_save
from django.dispatch import receiver

from campaigns.models import Audience, Campaign, Promotion
from shop.signals import dataset_importers, events_stored, history_imported

# The user making the change, set by the admin around a save, so the audit log can say who voided an approval.
acting_user = contextvars.ContextVar("acting_user", default=None)


def _void(campaign_ids, why):
    from campaigns.services.batches import batches_void_approvals

    batches_void_approvals(campaign_ids=list(campaign_ids), by=acting_user.get(), why=why)


@receiver(post_save, sender=Campaign)
def campaign_saved(sender, instance, created, **kwargs):
    if not created:
        _void([instance.id], f"The campaign was edited (version {instance.version}).")


@receiver(post_save, sender=Promotion)
def promotion_saved(sender, instance, created, **kwargs):
    if not created:
        _void(instance.campaigns.values_list("id", flat=True), f"Promotion '{instance.name}' was edited.")


@receiver(post_save, sender=Audience)
def audience_saved(sender, instance, created, **kwargs):
    if not created:
        campaign_ids = list(instance.campaigns.values_list("id", flat=True))
        Campaign.objects.filter(id__in=campaign_ids).update(version=F("version") + 1)
        _void(campaign_ids, f"The audience '{instance.name}' was edited.")


@receiver(m2m_changed, sender=Campaign.promotions.through)
def campaign_promotions_changed(sender, instance, action, reverse, pk_set, **kwargs):
    if action not in ("post_add", "post_remove", "post_clear"):
        return
    campaign_ids = [instance.id] if not reverse else list(pk_set or [])
    if not campaign_ids:
        return
    Campaign.objects.filter(id__in=campaign_ids).update(version=F("version") + 1)
    _void(campaign_ids, "The campaign's promotions changed.")


def _promotion_items_changed(sender, instance, action, reverse, **kwargs):
    if action in ("post_add", "post_remove", "post_clear") and isinstance(instance, Promotion):
        Promotion.objects.filter(id=instance.id).update(version=F("version") + 1)
        _void(instance.campaigns.values_list("id", flat=True), f"Promotion '{instance.name}' changed its items.")


m2m_changed.connect(_promotion_items_changed, sender=Promotion.items.through)
m2m_changed.connect(_promotion_items_changed, sender=Promotion.excluded_items.through)


@receiver(history_imported)
def history_to_promotions(sender, source, **kwargs):
    from campaigns.services.history import promotions_from_history

    promotions_from_history(source=source)


@receiver(tracking)
def provider_tracking_event(sender, event, esp_name, **kwargs):
    from campaigns.services.tracking import provider_event_store

    provider_event_store(event=event, esp_name=esp_name)


@receiver(events_stored)
def attribute_stored_events(sender, source, first_id, last_id, **kwargs):
    """Purchases may have been earned by a message: attribute them on the `default` queue, never in the request."""
    from campaigns.tasks import attribute_events

    attribute_events.delay_on_commit(first_id, last_id)


def _hillstrom(path, progress):
    from campaigns.services.hillstrom import hillstrom_import

    return hillstrom_import(path=path, progress=progress)


dataset_importers["hillstrom"] = _hillstrom
