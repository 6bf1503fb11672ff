import pytest
from django.core.management import call_command

from shop.models import Customer, Event, ExternalCampaign, ExternalCoupon, Item
from shop.services.completejourney import load_tables

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def tables():
    return load_tables()


def test_it_loads_households_products_events_and_campaign_history(tables):
    # when the first 10 households are loaded
    call_command("import_data", "completejourney", households=10, verbosity=0)
    # then customers carry made-up addresses and demographics
    households = sorted(set(tables["transactions"]["household_id"]) | set(tables["demographics"]["household_id"]))[:10]
    assert sorted(int(c) for c in Customer.objects.values_list("external_id", flat=True)) == households
    first = Customer.objects.get(external_id=str(households[0]))
    assert first.email == f"household-{households[0]}@example.test"
    demo = tables["demographics"].set_index("household_id")
    if households[0] in demo.index:
        assert first.demographics["income"] == demo.loc[households[0], "income"]
    # every product is an item with its category path (transactions naming unlisted products add stubs)
    assert Item.objects.filter(is_stub=False).count() == len(tables["products"])
    item = Item.objects.get(external_id="25671")
    assert item.category_path == "GROCERY > FRZN ICE > ICE - CRUSHED/CUBED" and item.brand == "National"
    # purchases and coupon redemptions of those households are events, discounts kept
    tx = tables["transactions"][tables["transactions"]["household_id"].isin(households)]
    redemptions = tables["coupon_redemptions"][tables["coupon_redemptions"]["household_id"].isin(households)]
    assert Event.objects.filter(type="purchase").count() == len(tx)
    assert Event.objects.filter(type="coupon_redemption").count() == len(redemptions)
    row = tx.iloc[0]
    stored = Event.objects.get(source="completejourney", client_event_id=f"tx-{row.basket_id}-{row.product_id}")
    assert float(stored.value) == pytest.approx(row.sales_value)
    # each line carries its basket as the order id
    assert stored.order_id == str(row.basket_id)
    assert Event.objects.filter(type="purchase", order_id=None).count() == 0
    assert float(stored.discount) == pytest.approx(
        abs(row.retail_disc) + abs(row.coupon_disc) + abs(row.coupon_match_disc)
    )
    # and the shop's campaigns with whom they targeted and which items their coupons covered
    assert ExternalCampaign.objects.count() == len(tables["campaign_descriptions"])
    targeted = tables["campaigns"][tables["campaigns"]["household_id"].isin(households)]
    assert ExternalCampaign.targeted.through.objects.count() == len(targeted)
    assert ExternalCoupon.objects.count() == len(tables["coupons"][["campaign_id", "coupon_upc"]].drop_duplicates())
    assert ExternalCoupon.items.through.objects.count() == len(tables["coupons"].drop_duplicates())
    # which the campaigns stage shows as past promotions, never offered again
    from campaigns.models import Promotion

    past = Promotion.objects.filter(historical=True)
    assert past.count() == len(tables["campaign_descriptions"])
    one = past.get(external_campaign__external_id="18")
    assert "it is a past promotion" in one.unusable_reason()
    covered = tables["coupons"][tables["coupons"]["campaign_id"] == 18]["product_id"].astype(str)
    assert set(one.items.values_list("external_id", flat=True)) == set(covered)


def test_loading_twice_stores_nothing_twice(tables):
    call_command("import_data", "completejourney", households=3, verbosity=0)
    counts = (
        Customer.objects.count(),
        Item.objects.count(),
        Event.objects.count(),
        ExternalCoupon.items.through.objects.count(),
    )
    call_command("import_data", "completejourney", households=3, verbosity=0)
    assert (
        Customer.objects.count(),
        Item.objects.count(),
        Event.objects.count(),
        ExternalCoupon.items.through.objects.count(),
    ) == counts
