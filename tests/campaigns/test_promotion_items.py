"""Choosing a promotion's items: category and brand suggestions from the catalogue, and the live count."""

import pytest
from django.urls import reverse

from shop.models import Item

pytestmark = pytest.mark.django_db
CATALOGUE = reverse("admin:campaigns_promotion_catalogue")
MATCHING = reverse("admin:campaigns_promotion_matching")


def test_category_suggestions_are_path_prefixes_with_their_items(client, marketer, shop):
    client.force_login(marketer)
    options = client.get(CATALOGUE, {"kind": "category", "q": "beau"}).json()["options"]
    # 24 items in 3 categories, 8 each: "Beauty" covers both of its paths
    assert options == [
        {"value": "Beauty", "items": 16},
        {"value": "Beauty > Hair", "items": 8},
        {"value": "Beauty > Skin care", "items": 8},
    ]
    assert [o["value"] for o in client.get(CATALOGUE, {"kind": "category", "q": "kit"}).json()["options"]] == [
        "Home > Kitchen"
    ]


def test_brand_suggestions(client, marketer, shop):
    client.force_login(marketer)
    assert client.get(CATALOGUE, {"kind": "brand", "q": "ac"}).json() == {"options": [{"value": "Acme", "items": 12}]}
    assert client.get(CATALOGUE, {"kind": "shoe"}).status_code == 400


def test_the_live_count_follows_the_rule_and_its_exclusions(client, marketer, shop):
    client.force_login(marketer)
    # every item when nothing is named; sku-5 is out of stock
    assert client.post(MATCHING, {}).json() == {"items": 24, "offerable": 23}
    # a category, less a brand (exclusions win), plus a named item
    kitchen_item = Item.objects.get(external_id="sku-2")  # Home > Kitchen, Zenith
    body = {"categories": "Beauty\n", "excluded_brands": "Acme", "items": [str(kitchen_item.id)]}
    assert client.post(MATCHING, body).json()["items"] == 8 + 1  # the Zenith half of 16, and sku-2
    assert client.post(MATCHING, {**body, "excluded_items": [str(kitchen_item.id)]}).json()["items"] == 8


def test_bad_input_names_the_field_and_outsiders_are_refused(client, marketer, outsider, shop):
    client.force_login(marketer)
    response = client.post(MATCHING, {"items": ["1", "x"]})
    assert response.status_code == 400 and response.json() == {"error": "items: expected item ids."}
    client.force_login(outsider)
    assert client.get(CATALOGUE, {"kind": "brand"}).status_code == 302  # to the login: not staff


def test_the_form_carries_the_pickers(client, marketer, shop):
    client.force_login(marketer)
    page = client.get(reverse("admin:campaigns_promotion_add")).content.decode()
    assert "campaigns/promotion-items.js" in page and CATALOGUE in page and MATCHING in page
