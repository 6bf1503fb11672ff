"""Any change to a campaign or its promotions after approval voids the approval (and marks review batches stale).

Also: the providers' tracking webhooks arrive here through anymail's `tracking` signal.

Counters that attribution keeps on a promotion (redemptions_used, discount_used) are written with
QuerySet.update(), which sends no signal: spending budget is not a change of the promotion.
"""

import contextvars

from anymail.signals import tracking
from django.db.models.signals import m2m_changed, post_save
from django.dispatch import receiver

from campaigns.approvals import approvals_void_after_change
from campaigns.models import Audience, Campaign, Promotion
from promo_site.outbox import outbox_enqueue
from shop.signals import customer_erased, customer_exported, dataset_importers, events_stored, history_imported

SUMMARY_REFRESH_AFTER_EVENTS = 100_000  # smaller writes wait for the beat (every minute)

# The user making the change, set by the admin around a save, so the audit log can say who voided an approval.
acting_user = contextvars.ContextVar("acting_user", default=None)


def _changed(rows, why, versioned=False):
    approvals_void_after_change(changed=rows, why=why, by=acting_user.get(), versioned=versioned)


@receiver(post_save, sender=Campaign)
def campaign_saved(sender, instance, created, **kwargs):
    if not created:
        _changed([instance], f"The campaign was edited (version {instance.version}).", versioned=True)


@receiver(post_save, sender=Promotion)
def promotion_saved(sender, instance, created, **kwargs):
    if not created:
        _changed([instance], f"Promotion '{instance.name}' was edited.", versioned=True)


@receiver(post_save, sender=Audience)
def audience_saved(sender, instance, created, **kwargs):
    if not created:
        _changed([instance], f"The audience '{instance.name}' was edited.")


def _m2m_changed_rows(model, instance, action, reverse, pk_set, related):
    """The rows of `model` whose many-to-many set changed, whichever side the edit came from; None before
    the change. A clear from the other side names no pks, so they are noted at pre_clear."""
    if not reverse:
        return [instance] if action in ("post_add", "post_remove", "post_clear") else None
    if action == "pre_clear":
        instance._m2m_clearing = list(getattr(instance, related).all())
    if action == "post_clear":
        return instance.__dict__.pop("_m2m_clearing", [])
    if action in ("post_add", "post_remove"):
        return list(model.objects.filter(pk__in=pk_set or []))
    return None


@receiver(m2m_changed, sender=Campaign.promotions.through)
def campaign_promotions_changed(sender, instance, action, reverse, pk_set, **kwargs):
    """campaign.promotions.add(...) or, from the other side, promotion.campaigns.add(...)."""
    campaigns = _m2m_changed_rows(Campaign, instance, action, reverse, pk_set, "campaigns")
    if campaigns:
        _changed(campaigns, "The campaign's promotions changed.")


def _promotion_items_changed(sender, instance, action, reverse, pk_set, **kwargs):
    """promotion.items.add(...) or, from the other side, item.promotions.add(...) (and the exclusions)."""
    related = "promotions" if sender is Promotion.items.through else "excluded_from_promotions"
    for promotion in _m2m_changed_rows(Promotion, instance, action, reverse, pk_set, related) or []:
        _changed([promotion], f"Promotion '{promotion.name}' changed its items.")


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
def attribute_stored_events(sender, source, first_id, last_id, types=None, **kwargs):
    """Purchases may have been earned by a message: attribute them on the `default` queue, never in the request
    (through the outbox, in the transaction that stored them). A write of views or carts only has nothing to
    attribute: no outbox row, no task (an outbox row and its dispatch were 4 statements of every API batch)."""
    from campaigns.services.attribution import CONVERTING

    if types is not None and not set(types) & set(CONVERTING):
        return
    outbox_enqueue("campaigns.tasks.attribute_events", first_id, last_id)
    if last_id - first_id + 1 >= SUMMARY_REFRESH_AFTER_EVENTS:
        # An import: the audiences' purchase summary catches up now, not at the next beat; until it does, a
        # count reads these events from shop_event (exact, slower).
        outbox_enqueue("campaigns.tasks.purchase_summary_refresh")


def _hillstrom(path, progress):
    from campaigns.services.hillstrom import hillstrom_import

    return hillstrom_import(path=path, progress=progress)


dataset_importers["hillstrom"] = _hillstrom


@receiver(customer_exported)
def customer_exported_add_campaign_data(sender, customer_id, **kwargs):
    from campaigns.services.privacy import customer_campaign_data

    return customer_campaign_data(customer_id=customer_id)


@receiver(customer_erased)
def customer_erased_remove_campaign_data(sender, customer_id, **kwargs):
    from campaigns.services.privacy import customer_campaign_data_erase

    return customer_campaign_data_erase(customer_id=customer_id)
