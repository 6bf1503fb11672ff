"""Every change to what a batch was generated from voids its approval: one test per path a change can take."""

import pytest
from django.urls import reverse

from campaigns.models import Batch, BatchEvent
from campaigns.services.batches import batch_approve, batch_is_stale, batch_request
from campaigns.services.generation import batch_generate
from tests.admin_forms import admin_form
from tests.campaigns.conftest import promotion

pytestmark = pytest.mark.django_db


@pytest.fixture
def campaign(campaign, shop):
    """The campaign, its promotion listing items[0] by name besides its category (before any batch)."""
    offered(campaign).items.add(shop["items"][0])
    return campaign


@pytest.fixture
def approved(campaign, active_model, marketer, approver):
    batch_id = batch_request(campaign=campaign, by=marketer)
    batch_generate(batch_id=batch_id)
    return batch_approve(batch=Batch.objects.get(pk=batch_id), by=approver)


def offered(campaign):
    return campaign.promotions.get()


CHANGES = {
    "campaign saved": lambda c, shop: _save(c, subject_template="New subject"),
    "promotion saved": lambda c, shop: _save(offered(c), value=20),
    "audience saved": lambda c, shop: _save(c.audience, rules={"match": "all", "rules": []}, name="All of them"),
    "promotion added to the campaign": lambda c, shop: c.promotions.add(promotion(name="another")),
    "promotion removed from the campaign": lambda c, shop: c.promotions.remove(offered(c)),
    "campaign's promotions cleared": lambda c, shop: c.promotions.clear(),
    "campaign added from the promotion's side": lambda c, shop: promotion(name="other").campaigns.add(c),
    "campaign removed from the promotion's side": lambda c, shop: offered(c).campaigns.remove(c),
    "campaigns cleared from the promotion's side": lambda c, shop: offered(c).campaigns.clear(),
    "item added to the promotion": lambda c, shop: offered(c).items.add(shop["items"][2]),
    "item removed from the promotion": lambda c, shop: offered(c).items.remove(shop["items"][0]),
    "promotion's items cleared": lambda c, shop: offered(c).items.clear(),
    "promotion added from the item's side": lambda c, shop: shop["items"][2].promotions.add(offered(c)),
    "promotion removed from the item's side": lambda c, shop: shop["items"][0].promotions.remove(offered(c)),
    "promotions cleared from the item's side": lambda c, shop: shop["items"][0].promotions.clear(),
    "excluded item added": lambda c, shop: offered(c).excluded_items.add(shop["items"][1]),
    "exclusion added from the item's side": lambda c, shop: shop["items"][1].excluded_from_promotions.add(offered(c)),
}


def _save(row, **fields):
    for name, value in fields.items():
        setattr(row, name, value)
    row.save()


@pytest.mark.parametrize("change", CHANGES)
def test_a_change_voids_the_approval(approved, campaign, shop, change):
    # when
    CHANGES[change](campaign, shop)
    # then
    approved.refresh_from_db()
    assert approved.status == Batch.Status.VOIDED
    assert approved.events.last().action == BatchEvent.Action.VOIDED


@pytest.mark.parametrize("change", CHANGES)
def test_a_change_makes_a_batch_in_review_stale(campaign, active_model, marketer, shop, change):
    batch_id = batch_request(campaign=campaign, by=marketer)
    batch_generate(batch_id=batch_id)
    CHANGES[change](campaign, shop)
    assert batch_is_stale(Batch.objects.get(pk=batch_id))


def test_spending_budget_is_no_change(approved, campaign):
    # attribution raises the used counters with QuerySet.update(): the approval stands
    type(offered(campaign)).objects.filter(pk=offered(campaign).pk).update(redemptions_used=1)
    assert Batch.objects.get(pk=approved.pk).status == Batch.Status.APPROVED


@pytest.mark.parametrize(
    "page, change",
    [
        ("campaign", {"subject_template": ["Edited in the admin"]}),
        ("campaign", {"promotions": "another promotion"}),
        ("promotion", {"value": ["25"]}),
        ("audience", {"name": ["Renamed in the admin"]}),
    ],
)
def test_an_edit_in_the_admin_voids_it_and_names_who(client, approved, campaign, marketer, page, change):
    # given the marketer's admin form of the campaign, its promotion or its audience, as the browser has it
    row = {"campaign": campaign, "promotion": offered(campaign), "audience": campaign.audience}[page]
    url = reverse(f"admin:campaigns_{page}_change", args=[row.pk])
    client.force_login(marketer)
    data = admin_form(client.get(url).content.decode(), f"{page}_form")
    if change.get("promotions") == "another promotion":
        change = {"promotions": [str(promotion(name="another").pk)]}
    # when one field changes and the form is saved (inlines and many-to-many fields included)
    response = client.post(url, {**data, **change})
    # then
    assert response.status_code == 302, _form_errors(response)
    approved.refresh_from_db()
    assert approved.status == Batch.Status.VOIDED
    assert approved.events.last().by == marketer


def _form_errors(response):
    context = response.context or {}
    form = context.get("adminform")
    inlines = [formset.formset.errors for formset in context.get("inline_admin_formsets", [])]
    return {"form": form and form.form.errors, "inlines": inlines, "status": response.status_code}
