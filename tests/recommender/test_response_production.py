"""The response model in production computes what the backtest computes: a model trained with a version
(response_model_train) scores a customer and an item set through ResponsePredictor with the same features
and the same probability as the backtest's set_window_predict on the whole log, at the same cut-off."""

from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from recommender import response
from recommender.ml.response import training
from recommender.ml.response.features import HISTORY_DAYS, NEVER
from recommender.ml.response.training import set_window_predict, set_window_rows
from recommender.models import ModelVersion
from recommender.response import ARTIFACT, ResponsePredictor, ShopData, response_model_train, shop_data_load
from shop.models import Customer, Event
from tests.factories import CustomerFactory, ItemFactory

DAYS = 160


def build_shop(now):
    """60 customers over 160 days buying tea every 5 to 9 days and coffee now and then; a few also bought
    long before, older than the history the features read (production does not even load those)."""
    tea = [ItemFactory(external_id=f"tea-{i}", category_path="Drinks > Tea") for i in range(4)]
    coffee = [ItemFactory(external_id=f"coffee-{i}", category_path="Drinks > Coffee") for i in range(4)]
    rng = np.random.default_rng(3)
    events = []
    for c in range(60):
        customer = CustomerFactory(external_id=f"p{c:02d}")
        every = 5 + c % 5
        days = [(d, tea[(c + d) % 4]) for d in range(c % every, DAYS, every) if rng.random() < 0.7]
        days += [(d, coffee[d % 4]) for d in range(DAYS) if rng.random() < 0.03 * (1 + c % 3)]
        if c % 10 == 0:
            days.append((-(HISTORY_DAYS + 60 - DAYS), tea[0]))  # 60 days older than the history read
        for n, (day, item) in enumerate(days):
            events.append(
                Event(
                    customer=customer,
                    item=item,
                    type="purchase",
                    value=item.price,
                    occurred_at=now - timedelta(days=DAYS - day, hours=3),
                    source="test",
                    client_event_id=f"{c}-{n}",
                )
            )
    Event.objects.bulk_create(events)
    return tea


def buyer_ids():
    return sorted(set(Event.objects.values_list("customer_id", flat=True)))


@pytest.mark.django_db
@pytest.mark.parametrize("level_customers", [None, 25])
def test_it_scores_with_the_features_and_probabilities_of_the_backtest(
    settings, tmp_path, monkeypatch, level_customers
):  # noqa: E501
    # given a shop and the response model a version trains on it (and, the second time, level shifts
    # measured on a sample of 25 of the 60 buyers, in production and in the backtest alike)
    if level_customers:
        monkeypatch.setattr(training, "LEVEL_CUSTOMERS", level_customers)
        monkeypatch.setattr(response, "LEVEL_CUSTOMERS", level_customers)
    settings.MEDIA_ROOT = tmp_path
    now = timezone.now()
    tea = build_shop(now)
    report = response_model_train(folder=tmp_path / "v1", until=now)
    assert "skipped" not in report, report
    version = ModelVersion.objects.create(algorithm="transitions", artifact="v1")
    assert (tmp_path / "v1" / ARTIFACT).exists()
    # when production scores every customer for the tea set at now
    predictor = ResponsePredictor.of_version(version, now=now)
    tea_ids = [item.id for item in tea]
    customer_ids = buyer_ids()
    produced = predictor.predict(customer_ids, tea_ids)
    # then the backtest on the whole log, at the same cut-off, computes the same features...
    whole = shop_data_load()
    assert len(whole.shop.purchases.day) > len(predictor.chunk.data.shop.purchases.day)  # the old purchases
    rows = whole.customer_index(customer_ids)
    mask = whole.item_mask(tea_ids)
    X_eval, _y, _n, _c = set_window_rows(
        whole.shop, cutoff=predictor.cutoff, item_sets={"tea": mask}, days=settings.MEASUREMENT_DAYS, customers=rows
    )
    X_prod = predictor.features(customer_ids, tea_ids)
    np.testing.assert_allclose(X_prod.to_numpy(), X_eval[list(X_prod.columns)].to_numpy(), equal_nan=True)
    assert list(X_prod.columns) == predictor.model.feature_names_
    # ... and the same probabilities, each set's level shift included
    _X, backtest, _names, _rows = set_window_predict(
        predictor.model,
        whole.shop,
        cutoff=predictor.cutoff,
        item_sets={"tea": mask},
        days=settings.MEASUREMENT_DAYS,
        customers=rows,
    )
    np.testing.assert_allclose(produced, backtest, rtol=1e-9)
    assert 0.0 < produced.mean() < 1.0


@pytest.mark.django_db
def test_a_predictor_asked_for_several_sets_gives_each_what_a_fresh_one_gives(settings, tmp_path, monkeypatch):
    # given a version's response model and a predictor that keeps one reading of the log for the level shifts
    settings.MEDIA_ROOT = tmp_path
    now = timezone.now()
    tea = build_shop(now)
    response_model_train(folder=tmp_path / "v1", until=now)
    version = ModelVersion.objects.create(algorithm="transitions", artifact="v1")
    shared = ResponsePredictor.of_version(version, now=now)
    customer_ids = buyer_ids()
    sets = [[item.id for item in tea], [tea[0].id], [item.id for item in tea[1:]]]
    reads = []
    monkeypatch.setattr(response, "shop_data_load", lambda **kw: reads.append(kw) or shop_data_load(**kw))
    # when it predicts three sets one after the other, and a fresh predictor predicts each
    together = [shared.predict(customer_ids, item_ids) for item_ids in sets]
    assert len(reads) == 2  # the level window's sample once, the chunk once
    alone = [ResponsePredictor.of_version(version, now=now).predict(customer_ids, item_ids) for item_ids in sets]
    # then the probabilities are the same, bit for bit
    for got, want in zip(together, alone):
        np.testing.assert_array_equal(got, want)


@pytest.mark.django_db
def test_chunks_give_what_the_whole_audience_at_once_gives(settings, tmp_path):
    # given a version's response model, the shop's buyers and a customer who never bought
    settings.MEDIA_ROOT = tmp_path
    now = timezone.now()
    tea = build_shop(now)
    response_model_train(folder=tmp_path / "v1", until=now)
    version = ModelVersion.objects.create(algorithm="transitions", artifact="v1")
    newcomer = CustomerFactory(external_id="newcomer")
    customer_ids = [*buyer_ids(), newcomer.id]
    tea_ids = [item.id for item in tea]
    at_once = ResponsePredictor.of_version(version, now=now).predict(customer_ids, tea_ids)
    # when another predictor reads them a chunk of 17 at a time, asking in sub-chunks of 5 (as generation does)
    chunked = ResponsePredictor.of_version(version, now=now)
    parts = []
    for start in range(0, len(customer_ids), 17):
        chunk = customer_ids[start : start + 17]
        chunked.prepare(chunk)
        prepared = chunked.chunk
        parts += [chunked.predict(chunk[a : a + 5], tea_ids) for a in range(0, len(chunk), 5)]
        assert chunked.chunk is prepared  # no read of its own for a sub-chunk
    # then each customer's probability is the same, bit for bit
    np.testing.assert_array_equal(np.concatenate(parts), at_once)
    # and the newcomer's is that of a customer with no purchase: nothing of another customer's in it
    never = chunked._never_bought(chunked.catalogue.item_mask(tea_ids))
    assert never["all_days_since"].iloc[0] == NEVER and never["set_days_since"].iloc[0] == NEVER
    for column in ("set_blocks_365", "set_block_rate_182", "set_decayed_14", "all_blocks_365", "set_expected_days"):
        assert never[column].iloc[0] == 0.0, column
    assert at_once[-1] < at_once[:-1].mean()


@pytest.mark.django_db
def test_production_encodes_demographics_as_the_model_learned_them(settings, tmp_path):
    # given customers with an age band, and the response model trained on them
    settings.MEDIA_ROOT = tmp_path
    now = timezone.now()
    tea = build_shop(now)
    bands = ["25-34", "35-44", "45-54"]
    for n, customer in enumerate(Customer.objects.order_by("id")):
        customer.demographics = {"age": bands[n % 3], "kids": n % 2}
        customer.save(update_fields=["demographics"])
    response_model_train(folder=tmp_path / "v1", until=now)
    version = ModelVersion.objects.create(algorithm="transitions", artifact="v1")
    # when a customer with a band the model never saw, sorting before the others, joins later and buys
    young = CustomerFactory(external_id="young", demographics={"age": "19-24"})
    Event.objects.create(
        customer=young, item=tea[0], type="purchase", value=1, occurred_at=now - timedelta(days=2), source="test"
    )
    predictor = ResponsePredictor.of_version(version, now=now)
    X = predictor.features(buyer_ids(), [item.id for item in tea])
    # then the bands keep the ranks the model learned (25-34 is 0, not 1), the new band is unknown to it,
    # and numbers stay numbers
    ages = dict(zip(buyer_ids(), X["demo_age"]))
    first = Customer.objects.order_by("id").first()
    assert ages[first.id] == 0.0 and np.isnan(ages[young.id])
    assert sorted(set(X["demo_age"].dropna())) == [0.0, 1.0, 2.0]
    assert sorted(set(X["demo_kids"].dropna())) == [0.0, 1.0]


def test_customer_index_finds_each_id_and_marks_the_unknown():
    # given a shop's customers (ids ascending, as shop_data_load gives them)
    data = ShopData(shop=None, customer_ids=np.array([3, 7, 10, 42]), item_ids=np.zeros(0), group_names=[], last_day=0)
    # when / then: positions, -1 before, between and after the known ids
    assert data.customer_index([42, 3, 1, 8, 10, 99, 7]).tolist() == [3, 0, -1, -1, 2, -1, 1]
    assert data.customer_index([]).tolist() == []
    empty = ShopData(shop=None, customer_ids=np.zeros(0, np.int64), item_ids=np.zeros(0), group_names=[], last_day=0)
    assert empty.customer_index([5]).tolist() == [-1]


@pytest.mark.django_db
def test_a_shop_with_no_purchase_in_the_year_read_scores_zero(settings, tmp_path):
    # given a version's response model, and a clock two years past every purchase
    settings.MEDIA_ROOT = tmp_path
    now = timezone.now()
    build_shop(now)
    response_model_train(folder=tmp_path / "v1", until=now)
    version = ModelVersion.objects.create(algorithm="transitions", artifact="v1")
    predictor = ResponsePredictor.of_version(version, now=now + timedelta(days=2 * HISTORY_DAYS))
    # when it scores customers, then each gets 0 (as before the columns were kept), and no error
    customer_ids = list(Event.objects.values_list("customer_id", flat=True).distinct()[:3])
    assert predictor.predict(customer_ids, [1, 2]).tolist() == [0.0] * len(customer_ids)
    assert not len(predictor.chunk.data.customer_ids)
