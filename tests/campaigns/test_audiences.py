from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from campaigns.audiences import audience_count, audience_query
from shop.models import Customer, Event
from tests.factories import CustomerFactory, EventFactory, ItemFactory


def ids(rules):
    return set(audience_query(rules).values_list("external_id", flat=True))


def rule(field, op, value, **extra):
    return {"match": "all", "rules": [{"field": field, "op": op, "value": value, **extra}]}


@pytest.fixture
def people(db):
    now = timezone.now()
    cream = ItemFactory(external_id="cream", category_path="Beauty > Skin care", brand="Acme", price="10.00")
    pan = ItemFactory(external_id="pan", category_path="Home > Kitchen", brand="Zenith", price="50.00")
    ann = CustomerFactory(external_id="ann", demographics={"age": 34, "income": "50-74K"}, time_zone="Europe/Berlin")
    bob = CustomerFactory(external_id="bob", demographics={"age": 61}, email="bob@corp.test")
    cyd = CustomerFactory(external_id="cyd", marketing_consent=False)
    CustomerFactory(external_id="dan", unsubscribed_at=now)
    # ann bought cream twice recently, bob bought a pan 100 days ago, cyd only viewed the cream
    EventFactory(customer=ann, item=cream, value="10.00", occurred_at=now - timedelta(days=2))
    EventFactory(customer=ann, item=cream, value="10.00", occurred_at=now - timedelta(days=20))
    EventFactory(customer=bob, item=pan, value="50.00", occurred_at=now - timedelta(days=100))
    EventFactory(customer=cyd, item=cream, type="view", value=None, occurred_at=now - timedelta(days=1))
    return Customer.objects.all()


def test_an_empty_rule_set_is_everyone(people):
    assert ids({}) == {"ann", "bob", "cyd", "dan"}


def test_recency(people):
    assert ids(rule("recency_days", "lte", 30)) == {"ann"}
    assert ids(rule("recency_days", "gte", 30)) == {"bob", "cyd", "dan"}  # never bought: as long ago as can be


def test_frequency_counts_customers_without_purchases_as_zero(people):
    assert ids(rule("frequency", "gte", 2, days=365)) == {"ann"}
    assert ids(rule("frequency", "lte", 1, days=365)) == {"bob", "cyd", "dan"}
    assert ids(rule("frequency", "eq", 0, days=30)) == {"bob", "cyd", "dan"}


def test_monetary(people):
    assert ids(rule("monetary", "gte", 40, days=365)) == {"bob"}
    assert ids(rule("monetary", "lt", 40, days=365)) == {"ann", "cyd", "dan"}


def test_bought_category_and_brand(people):
    assert ids(rule("bought_category", "yes", "Beauty")) == {"ann"}
    assert ids(rule("bought_category", "no", "Beauty")) == {"bob", "cyd", "dan"}
    assert ids(rule("bought_brand", "yes", "Zenith", days=365)) == {"bob"}
    assert ids(rule("bought_brand", "yes", "Zenith", days=30)) == set()


def test_viewed_but_did_not_buy(people):
    assert ids(rule("viewed_not_bought", "yes", "Beauty > Skin care", days=30)) == {"cyd"}


def test_customer_fields_and_demographics(people):
    assert ids(rule("email_domain", "eq", "corp.test")) == {"bob"}
    assert ids(rule("time_zone", "eq", "Europe/Berlin")) == {"ann"}
    assert ids(rule("demographic", "gte", 50, key="age")) == {"bob"}
    assert ids(rule("demographic", "eq", "50-74K", key="income")) == {"ann"}


def test_groups_combine_with_and_or(people):
    either = {
        "match": "any",
        "rules": [
            {"field": "recency_days", "op": "lte", "value": 30},
            {"match": "all", "rules": [{"field": "monetary", "op": "gte", "value": 40, "days": 365}]},
        ],
    }
    assert ids(either) == {"ann", "bob"}
    both = dict(either, match="all")
    assert ids(both) == set()


def test_the_count_says_who_is_left_out_and_why(people):
    Customer.objects.filter(external_id="bob").update(suppressed=True)
    assert audience_count({}) == {
        "total": 4,
        "contactable": 1,
        "excluded": {"no_consent": 1, "unsubscribed": 1, "suppressed": 1, "no_email": 0},
    }


def test_a_customer_without_an_e_mail_address_is_not_contactable_in_any_of_the_three_views(people):
    # given a consented customer with no e-mail address (and the other reachable one suppressed)
    Customer.objects.filter(external_id="bob").update(suppressed=True)
    reachable = Customer.objects.contactable().get()
    Customer.objects.filter(pk=reachable.pk).update(email="")
    reachable.refresh_from_db()
    # then the count, the query filter and the instance all say so, for the same reason
    assert audience_count({})["excluded"]["no_email"] == 1
    assert not Customer.objects.contactable().exists()
    assert reachable.contact_exclusion() == "no_email"


@pytest.mark.parametrize(
    "rules, where",
    [
        ({"match": "some", "rules": []}, "rules.match"),
        ({"match": "all", "rules": [{"field": "shoe_size", "op": "eq", "value": 1}]}, "rules.rules[0].field"),
        ({"match": "all", "rules": [{"field": "recency_days", "op": "eq", "value": 1}]}, "rules.rules[0].op"),
        ({"match": "all", "rules": [{"field": "recency_days", "op": "lte", "value": "soon"}]}, "rules.rules[0].value"),
        (
            {
                "match": "any",
                "rules": [{"match": "all", "rules": [{"field": "demographic", "op": "eq", "value": "x"}]}],
            },
            "rules.rules[0].rules[0].key",
        ),
        (
            {"match": "all", "rules": [{"field": "affinity", "op": "top_percent", "value": 10, "promotion": 999999}]},
            "rules.rules[0].promotion",
        ),
    ],
)
def test_a_bad_rule_is_named_with_its_place(db, rules, where):
    with pytest.raises(ValidationError) as error:
        audience_query(rules)
    assert where in error.value.messages[0]


def test_affinity_selects_the_customers_most_likely_to_buy_the_items(active_model, shop):
    from tests.campaigns.conftest import promotion

    kitchen = promotion(name="kitchen", categories=["Home > Kitchen"])
    chosen = audience_query(rule("affinity", "top_percent", 25, promotion=kitchen.id))
    assert chosen.count() == 15  # a quarter of 60
    # the chosen ones' last purchase points more often at kitchen items than the others'
    last_category = {
        e.customer_id: e.item.category_path
        for e in Event.objects.select_related("item").order_by("customer_id", "occurred_at")
    }
    inside = [last_category[c] for c in chosen.values_list("id", flat=True)]
    assert sum(c == "Beauty > Hair" for c in inside) > len(inside) / 2  # the cycle goes hair -> kitchen next


def test_feedback_does_not_move_the_shop_clock(people):
    from django.core.cache import cache

    from campaigns.audiences import shop_clock

    before = shop_clock()
    cache.delete("shop-clock")
    customer = Customer.objects.get(external_id="ann")
    EventFactory(customer=customer, type="not_interested", value=None, occurred_at=before + timedelta(days=400))
    assert shop_clock() == before


def test_it_keeps_the_shop_clock_when_an_event_is_dated_far_in_the_future(people, settings):
    # given an event dated 2999, stored before imports checked dates
    from django.core.cache import cache

    from campaigns.audiences import shop_clock

    settings.EVENT_MAX_FUTURE_DAYS = 2
    cache.delete("shop-clock")
    before = shop_clock()
    cyd = Customer.objects.get(external_id="cyd")
    EventFactory(customer=cyd, type="view", value=None, occurred_at=before.replace(year=2999))
    cache.delete("shop-clock")
    # when the clock is read, then it ignores that event and audiences by recency keep their customers
    assert shop_clock() == before
    assert ids(rule("recency_days", "lte", 30)) == {"ann"}


def test_it_counts_purchases_without_an_item_for_recency_frequency_and_spend(people):
    # given cyd's order-level purchases: no item named, only the amount
    from recommender.interactions import interactions_load, purchased_items

    cyd = Customer.objects.get(external_id="cyd")
    for days in (3, 5):
        EventFactory(customer=cyd, item=None, value="30.00", occurred_at=timezone.now() - timedelta(days=days))
    # when audiences select by behaviour, then those purchases count
    assert ids(rule("recency_days", "lte", 30)) == {"ann", "cyd"}
    assert ids(rule("frequency", "gte", 2, days=365)) == {"ann", "cyd"}
    assert ids(rule("monetary", "gte", 60, days=365)) == {"cyd"}
    # and the recommender, which learns from items, leaves them out
    assert purchased_items(customer_ids=[cyd.id]) == {cyd.id: set()}
    assert cyd.id not in set(interactions_load(types=["purchase"]).customer_ids)
