"""Serving: a pinned version's probabilities per chunk of customers, what each may be shown, and why."""

import numpy as np
import pytest
from django.utils import timezone

from recommender import serving
from recommender.ml.popularity import PopularityRecommender
from recommender.ml.transitions import TransitionRecommender
from recommender.models import ModelVersion
from recommender.services import modelversion_activate, modelversion_train
from shop.models import Customer, Event, Item
from tests.recommender.test_registry import shop_with_a_pattern

# Items 0-3 skin care, 4-5 creams (a path below skin care), 6-8 hair, 9-11 kitchen.
PATHS = ["Beauty > Skin care"] * 4 + ["Beauty > Skin care > Creams"] * 2 + ["Beauty > Hair"] * 3 + ["Home"] * 3


@pytest.fixture(autouse=True)
def _fresh_cache():
    serving._cache.clear()
    yield
    serving._cache.clear()


@pytest.fixture
def catalogue(db, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    items = shop_with_a_pattern(customers=20, items=12)
    for item, path in zip(items, PATHS):
        item.category_path = path
        item.save()
    return items


def trained(algorithm):
    version = modelversion_train(version_id=ModelVersion.objects.create(algorithm=algorithm).id)
    return modelversion_activate(version=version, by=None)


@pytest.fixture
def served(catalogue):
    trained("transitions")
    return serving.served_model()


def customer(external_id):
    return Customer.objects.get(external_id=external_id).id


def columns(served, items):
    return [served.column[item.id] for item in items]


def say_not_interested(customer_id, item):
    Event.objects.create(
        customer_id=customer_id,
        item=item,
        type="not_interested",
        occurred_at=timezone.now(),
        source="test",
        client_event_id=f"no-{customer_id}-{item.id}-{Event.objects.count()}",
    )


def showable(served, customer_id, **options):
    (chunk,) = serving.serve_chunks(served, customer_ids=[customer_id], **options)
    return chunk.showable[0]


@pytest.mark.django_db
class TestServeChunks:
    def test_it_serves_probabilities_and_reasons_per_chunk_in_the_order_given(self, served, catalogue):
        # given five customers, asked for in chunks of two
        ids = [customer(f"c{n}") for n in (4, 0, 3, 1, 2)]
        # when
        chunks = list(serving.serve_chunks(served, customer_ids=ids, chunk=2))
        # then
        assert [chunk.customer_ids for chunk in chunks] == [ids[:2], ids[2:4], ids[4:]]
        first = chunks[0]
        assert first.proba.shape == first.showable.shape == (2, 12) and first.proba.dtype == np.float32
        np.testing.assert_allclose(first.proba.sum(axis=1), 1, rtol=1e-5)
        # and the cycle's next item is the most likely, because of the last item bought
        last = Event.objects.filter(customer_id=ids[0]).order_by("occurred_at").last().item
        following = catalogue[(catalogue.index(last) + 1) % 12]
        assert first.proba[0].argmax() == served.column[following.id]
        assert first.because(0, [served.column[following.id]]) == [last.id]
        assert first.because(0, []) == []

    def test_it_shows_active_in_stock_items_of_the_kinds_asked_for(self, served, catalogue):
        # given an item out of stock and one no longer sold
        Item.objects.filter(id=catalogue[9].id).update(in_stock=False)
        Item.objects.filter(id=catalogue[10].id).update(active=False)
        served = serving.served_model()  # stock is read once per served model
        someone = customer("c0")
        bought = set(Event.objects.filter(customer_id=someone, type="purchase").values_list("item_id", flat=True))
        # when
        everything, unbought = showable(served, someone), showable(served, someone, items="new")
        again = showable(served, someone, items="buy_again")
        # then
        assert not everything[columns(served, catalogue[9:11])].any()
        assert everything[[served.column[i] for i in bought - {catalogue[9].id, catalogue[10].id}]].all()
        assert not unbought[[served.column[i] for i in bought]].any()
        assert unbought.sum() == 10 - len(bought - {catalogue[9].id, catalogue[10].id})
        # and buy-again shows exactly the purchases still sold, and names their kind
        usable_bought = bought - {catalogue[9].id, catalogue[10].id}
        assert set(np.flatnonzero(again)) == {served.column[i] for i in usable_bought}
        (chunk,) = serving.serve_chunks(served, customer_ids=[someone])
        one_bought, one_new = served.column[next(iter(bought))], int(np.flatnonzero(~chunk.bought[0])[0])
        assert chunk.kind(0, [one_bought, one_new]) == ["buy_again", "new"]

    def test_the_bought_mask_marks_each_customers_purchases_and_skips_items_the_model_has_not(self, served, catalogue):
        # given two customers, one of whom bought an item added after the model was trained
        first, second = customer("c0"), customer("c1")
        later = Item.objects.create(external_id="later", title="Later")
        Event.objects.create(customer_id=first, item=later, type="purchase", occurred_at=timezone.now(),
                             source="test", client_event_id="later-1")  # fmt: skip
        # when
        mask = serving.bought_mask(served, customer_ids=[second, first])
        # then: each row holds that customer's purchases of the model's items, and the later item has no column
        for row, someone in enumerate([second, first]):
            bought = set(Event.objects.filter(customer_id=someone, type="purchase").values_list("item_id", flat=True))
            assert set(np.flatnonzero(mask[row])) == {served.column[i] for i in bought if i in served.column}
        assert served.columns_of(np.array([later.id, catalogue[3].id, -5])).tolist() == [
            -1,
            served.column[catalogue[3].id],
            -1,
        ]

    def test_a_new_items_named_reason_is_faithful_and_a_buy_again_item_says_its_rhythm(self, served, catalogue):
        # given a customer's chunk and their three most likely new items and one bought item
        someone = customer("c0")
        (chunk,) = serving.serve_chunks(served, customer_ids=[someone])
        new = [int(c) for c in np.argsort(-chunk.proba[0]) if not chunk.bought[0, c]][:3]
        again = int(np.flatnonzero(chunk.bought[0])[0])
        # when they are explained
        now = timezone.now()
        reasons = chunk.reasons(0, new + [again], now=now)
        # then a named history item's removal lowers the item's score under the served model
        history = np.asarray(chunk.histories[0])
        named = [(c, r) for c, r in zip(new, reasons) if r["because_item_id"]]
        assert named
        for column, reason in named:
            kept = history != served.column[reason["because_item_id"]]
            full = served.model.score([history])[0, column]
            assert served.model.score([history[kept]])[0, column] < full
            assert reason["kind"] == "new" and reason["reason"] == "because you bought"
        # and the bought item says how often and when (each is bought once in this shop)
        bought_at = Event.objects.filter(customer_id=someone, item_id=served.item_ids[again]).get().occurred_at
        days = f"{(now - bought_at).total_seconds() / 86400:.0f}"
        assert reasons[-1] == {
            "kind": "buy_again",
            "because_item_id": None,
            "reason": f"you bought this once, {days} days ago",
        }

    def test_not_interested_hides_the_item_then_its_category_and_the_paths_below(self, served, catalogue, settings):
        # given FEEDBACK_CATEGORY_AFTER = 2 and a customer who rejects one skin care item
        settings.FEEDBACK_CATEGORY_AFTER = 2
        someone, other = customer("c0"), customer("c1")
        say_not_interested(someone, catalogue[0])
        # then that item alone is hidden, for them alone
        assert list(np.flatnonzero(~showable(served, someone))) == columns(served, catalogue[:1])
        assert showable(served, other).all()
        # when they reject a second, different skin care item
        say_not_interested(someone, catalogue[1])
        # then all skin care, creams included, is hidden; hair and kitchen stay
        assert list(np.flatnonzero(~showable(served, someone))) == sorted(columns(served, catalogue[:6]))
        assert showable(served, other).all()

    def test_the_category_waits_for_the_configured_number_of_items(self, served, catalogue, settings):
        settings.FEEDBACK_CATEGORY_AFTER = 3
        someone = customer("c0")
        for item in catalogue[6:8]:  # two hair items
            say_not_interested(someone, item)
        assert sorted(np.flatnonzero(~showable(served, someone))) == sorted(columns(served, catalogue[6:8]))
        say_not_interested(someone, catalogue[8])
        say_not_interested(someone, catalogue[6])  # the same item again counts once
        assert sorted(np.flatnonzero(~showable(served, someone))) == sorted(columns(served, catalogue[6:9]))


@pytest.mark.django_db
class TestPinnedVersion:
    def test_a_pinned_version_keeps_serving_after_another_is_activated(self, catalogue):
        # given a batch that started on the transitions model
        first = trained("transitions")
        assert isinstance(serving.served_model(version_id=first.id).model, TransitionRecommender)
        # when a popularity model is activated in the meantime
        second = trained("pop")
        # then the pinned version still serves, and the active one serves everyone else
        pinned, active = serving.served_model(version_id=first.id), serving.served_model()
        assert (pinned.version, active.version) == (first, second)
        assert isinstance(pinned.model, TransitionRecommender) and isinstance(active.model, PopularityRecommender)
        (chunk,) = serving.serve_chunks(pinned, customer_ids=[customer("c0")])
        np.testing.assert_array_equal(chunk.proba, pinned.model.predict_proba(chunk.histories))

    def test_without_an_active_model_it_says_so(self):
        with pytest.raises(serving.NoActiveModel, match="no model version is active"):
            serving.served_model()

    def test_an_unknown_pinned_version_is_an_error(self):
        with pytest.raises(ModelVersion.DoesNotExist):
            serving.served_model(version_id=10**9)
