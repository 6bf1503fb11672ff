import json
import time
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from campaigns import audiences
from campaigns.audiences import MAX_DEPTH, MAX_RULES, audience_count, audience_query
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


@pytest.mark.parametrize("age", [timedelta(hours=3), timedelta(days=20), timedelta(days=900)])
def test_it_sets_the_shop_clock_to_the_latest_event_however_old(db, age):
    # given: a shop whose latest event is hours, weeks or years old (a historical data set)
    from django.core.cache import cache

    from campaigns.audiences import shop_clock

    latest = timezone.now() - age
    EventFactory(occurred_at=latest - timedelta(days=3))
    EventFactory(occurred_at=latest)
    cache.delete("shop-clock")
    # when / then
    assert shop_clock() == latest


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


@pytest.mark.parametrize(
    "value, where",
    [
        (float("nan"), "rules.rules[0].value"),
        ("Infinity", "rules.rules[0].value"),
        ("-inf", "rules.rules[0].value"),
        ("1e999999", "rules.rules[0].value"),
        (10**30, "rules.rules[0].value"),
        (True, "rules.rules[0].value"),
    ],
)
def test_it_refuses_numbers_that_are_not_finite_or_out_of_range(db, value, where):
    for rules in (rule("frequency", "gte", value, days=30), rule("recency_days", "lte", value)):
        with pytest.raises(ValidationError) as error:
            audience_query(rules)
        assert where in error.value.messages[0]


@pytest.mark.parametrize(
    "rules, where",
    [
        (rule("monetary", "gte", 1, days="NaN"), "rules.rules[0].days"),
        (rule("bought_brand", "yes", "Acme", days=10**12), "rules.rules[0].days"),
        (rule("recency_days", "lte", 10**6), "rules.rules[0].value"),  # a million days overflows the date
        (rule("demographic", "gte", "inf", key="age"), "rules.rules[0].value"),
        (rule("demographic", "eq", float("nan"), key="age"), "rules.rules[0].value"),
        (rule("attribute", "eq", "x", key="size__contains"), "rules.rules[0].key"),
        (rule("affinity", "top_percent", 10, promotion=10**40), "rules.rules[0].promotion"),
        (rule("affinity", "top_percent", 10, promotion=float("inf")), "rules.rules[0].promotion"),
        ({"match": "all", "rules": [{"field": ["email_domain"], "op": "eq", "value": "x"}]}, "rules.rules[0].field"),
    ],
)
def test_it_names_the_rule_and_field_of_an_input_that_used_to_end_in_a_500(db, rules, where):
    with pytest.raises(ValidationError) as error:
        audience_query(rules)
    assert where in error.value.messages[0]


def test_it_bounds_the_number_of_rules(db):
    # given 2,000 OR'ed rules, the audience that once ran in PostgreSQL for minutes
    domains = [{"field": "email_domain", "op": "eq", "value": f"d{n}.test"} for n in range(2000)]
    # when / then it is refused before any query, naming the first rule past the bound
    with pytest.raises(ValidationError) as error:
        audience_query({"match": "any", "rules": domains})
    assert f"rules.rules[{MAX_RULES}]" in error.value.messages[0] and str(MAX_RULES) in error.value.messages[0]
    # and groups count too
    nested = {"match": "any", "rules": [{"match": "all", "rules": domains[:3]} for _ in range(MAX_RULES // 3)]}
    with pytest.raises(ValidationError):
        audience_query(nested)
    # while the bound itself passes
    audience_query({"match": "any", "rules": domains[:MAX_RULES]})


def test_it_bounds_the_depth(db):
    rules = {"match": "all", "rules": [rule("recency_days", "lte", 30)]}
    for _ in range(MAX_DEPTH):
        rules = {"match": "all", "rules": [rules]}
    with pytest.raises(ValidationError) as error:
        audience_query(rules)
    assert f"nest at most {MAX_DEPTH} deep" in error.value.messages[0]


class TestCountTimeout:
    @pytest.fixture
    def slow(self, monkeypatch):
        """Rules whose query takes a second per customer."""

        def sleeping(rules):
            return Customer.objects.extra(where=["(SELECT true FROM pg_sleep(1))"])

        monkeypatch.setattr(audiences, "audience_query", sleeping)

    def statement_timeout(self):
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('statement_timeout')")
            return cursor.fetchone()[0]

    def test_it_stops_a_count_at_the_timeout(self, people, slow):
        before = self.statement_timeout()
        # when
        started = time.monotonic()
        with pytest.raises(audiences.AudienceCountTooSlow):
            audience_count({}, timeout_ms=100)
        # then the database stopped it, and the connection's own timeout is as it was
        assert time.monotonic() - started < 1
        assert self.statement_timeout() == before
        assert Customer.objects.count() == 4

    def test_it_leaves_the_connections_timeout_as_it_was_after_a_count(self, people):
        before = self.statement_timeout()
        assert audience_count({}, timeout_ms=100)["total"] == 4
        assert self.statement_timeout() == before

    def test_the_builder_answers_a_clear_error(self, client, marketer, people, slow, settings):
        # given
        settings.AUDIENCE_COUNT_TIMEOUT_MS = 100
        client.force_login(marketer)
        # when
        response = client.post(
            reverse("admin:campaigns_audience_count"), json.dumps({"rules": {}}), content_type="application/json"
        )
        # then
        assert response.status_code == 400
        assert response.json()["error"].startswith("Counting this audience took longer than 0.1 s and was stopped")


def test_the_builder_names_a_nan_in_the_rules(client, marketer, people):
    client.force_login(marketer)
    body = json.dumps({"rules": rule("monetary", "gte", float("nan"), days=30)})  # json writes NaN
    response = client.post(reverse("admin:campaigns_audience_count"), body, content_type="application/json")
    assert response.status_code == 400 and "rules.rules[0].value" in response.json()["error"]


@pytest.mark.parametrize("text", ["Acme\x00", "Acme\ud800"])
def test_it_refuses_a_text_the_database_cannot_store(db, text):
    # a NUL or a lone surrogate used to reach PostgreSQL as a query parameter and end in a 500
    with pytest.raises(ValidationError) as error:
        audience_query(rule("bought_brand", "yes", text, days=30))
    assert "rules.rules[0].value" in error.value.messages[0]
