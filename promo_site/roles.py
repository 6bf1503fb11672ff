"""The roles people have in promo_site, as Django groups with their permissions.

marketer: builds promotions, audiences and campaigns, generates batches, imports shop data, starts trainings.
approver: approves or rejects push batches (never one they created or generated).
analyst: reads everything, changes nothing.
integration: the shop's own systems, through API tokens: read and write customers, items and events.
  People's roles only read through the API, so a leaked analyst's token cannot unsubscribe or suppress anyone.
Activating a model version is for admins (superusers) only. Later features add their permissions
here; `roles_sync()` runs after every migrate.
"""

from django.contrib.auth.models import Group, Permission

VIEW_SHOP = [
    "shop.view_customer",
    "shop.view_item",
    "shop.view_event",
    "shop.view_importrun",
    "shop.view_externalcampaign",
    "shop.view_externalcoupon",
]

VIEW_MODELS = ["recommender.view_modelversion", "recommender.view_modelevent"]

VIEW_CAMPAIGNS = [
    f"campaigns.view_{model}"
    for model in (
        "promotion",
        "promotioncode",
        "audience",
        "campaign",
        "batch",
        "recipient",
        "batchevent",
        "upliftmodel",
    )
]

# Writing through the API (shop/api/permissions.py): upserts add and change, events add.
WRITE_SHOP = [
    "shop.add_customer",
    "shop.change_customer",
    "shop.add_item",
    "shop.change_item",
    "shop.add_event",
]

BUILD_CAMPAIGNS = [
    "campaigns.add_promotion",
    "campaigns.change_promotion",
    "campaigns.add_promotioncode",
    "campaigns.add_audience",
    "campaigns.change_audience",
    "campaigns.add_campaign",
    "campaigns.change_campaign",
    "campaigns.add_batch",  # generate
    "campaigns.change_batch",  # cancel, test sends
    "campaigns.add_upliftmodel",  # train the uplift model
]

ROLES = {
    "marketer": VIEW_SHOP
    + VIEW_MODELS
    + VIEW_CAMPAIGNS
    + BUILD_CAMPAIGNS
    + ["shop.add_importrun", "recommender.add_modelversion"],
    "approver": VIEW_SHOP + VIEW_MODELS + VIEW_CAMPAIGNS + ["campaigns.approve_batch"],
    "analyst": VIEW_SHOP + VIEW_MODELS + VIEW_CAMPAIGNS,
    "integration": ["shop.view_customer", "shop.view_item", "shop.view_event"] + WRITE_SHOP,
}


def _permissions(names):
    wanted = {tuple(name.split(".", 1)) for name in names}
    found = Permission.objects.filter(content_type__app_label__in={app for app, _ in wanted}).select_related(
        "content_type"
    )
    perms = [p for p in found if (p.content_type.app_label, p.codename) in wanted]
    missing = wanted - {(p.content_type.app_label, p.codename) for p in perms}
    return perms, missing


def roles_sync():
    """Create the role groups and give each exactly its permissions. Returns the groups by name."""
    groups = {}
    for name, permission_names in ROLES.items():
        perms, missing = _permissions(permission_names)
        if missing:
            return {}  # permissions not created yet (mid-migration): the next post_migrate finishes the job
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set(perms)
        groups[name] = group
    return groups
