"""The repeat features of a chunk at once (chunk_features) against customer_features, one customer at a time."""

import numpy as np
import pytest

from recommender.ml import deep_repeat_features as RF

DAY = RF.DAY


def random_chunk(seed, n_customers=60, n_items=25):
    """Customers with 0 to 30 purchases over 60 days in 0 to 12 orders (some orders at one moment, some
    repeated items in an order, some order numbers out of time order), a few with no order numbers."""
    rng = np.random.default_rng(seed)
    histories, stamps, orders = [], [], []
    for _ in range(n_customers):
        n_orders = int(rng.integers(0, 13))
        numbers = np.sort(rng.integers(0, max(n_orders, 1), size=int(rng.integers(0, 31)))) if n_orders else []
        numbers = np.asarray(numbers, np.int64)
        order_day = np.sort(rng.uniform(0, 60, size=max(n_orders, 1)))
        times = np.floor(order_day[numbers] * 4) / 4 * DAY + rng.integers(0, 2, len(numbers)) * 60.0
        histories.append(rng.integers(0, n_items, len(numbers)).astype(np.int64))
        stamps.append(times)
        orders.append(numbers)
    popularity = rng.uniform(0, 30, size=(n_items, len(RF.POPULARITY))).astype(np.float32)
    return histories, stamps, orders, popularity


def reference(histories, stamps, orders, now, popularity):
    """customer_features per customer, stacked as chunk_features returns them."""
    rows, items, feats = [], [], []
    customers = np.zeros((len(histories), len(RF.CUSTOMER_FEATURES)), np.float32)
    for row, history in enumerate(histories):
        numbers = None if orders is None else orders[row]
        distinct, item_feats, customers[row] = RF.customer_features(history, stamps[row], numbers, now, popularity)
        rows.append(np.full(len(distinct), row, np.int64))
        items.append(distinct)
        feats.append(item_feats)
    return np.concatenate(rows), np.concatenate(items), np.concatenate(feats), customers


@pytest.mark.parametrize("seed", range(6))
def test_it_equals_the_features_computed_one_customer_at_a_time(seed):
    # given random customers, a reference time that cuts some of their orders off
    histories, stamps, orders, popularity = random_chunk(seed)
    now = 45 * DAY + 0.5 * DAY * seed
    # when
    got = RF.chunk_features(histories, stamps, orders, now, popularity)
    # then
    want = reference(histories, stamps, orders, now, popularity)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_allclose(got[2], want[2], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got[3], want[3], rtol=1e-5, atol=1e-6)


def test_it_groups_orders_by_moment_where_a_history_names_none():
    histories, stamps, _orders, popularity = random_chunk(7)
    got = RF.chunk_features(histories, stamps, None, 50 * DAY, popularity)
    want = reference(histories, stamps, None, 50 * DAY, popularity)
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_allclose(got[2], want[2], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got[3], want[3], rtol=1e-5, atol=1e-6)


def test_a_chunk_with_no_order_before_now_has_no_rows():
    histories, stamps, orders, popularity = random_chunk(8, n_customers=5)
    rows, items, feats, customers = RF.chunk_features(histories, stamps, orders, -1.0, popularity)
    assert len(rows) == len(items) == len(feats) == 0
    assert customers.shape == (5, len(RF.CUSTOMER_FEATURES)) and not customers.any()
