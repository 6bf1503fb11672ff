"""Fixtures for the recommender.ml tests: small synthetic sequences with a planted pattern."""

import numpy as np
import pytest

from recommender.ml.data import leave_one_out

N_ITEMS = 50


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long-running test on the real Beauty data")


def planted_sequences(n_users=200, n_items=N_ITEMS, seed=0):
    """Each next item is (previous + 1) mod n_items with probability 0.8."""
    rng = np.random.default_rng(seed)
    sequences = []
    for _ in range(n_users):
        seq = [int(rng.integers(n_items))]
        for _ in range(int(rng.integers(4, 12))):
            follow = rng.random() < 0.8
            seq.append((seq[-1] + 1) % n_items if follow else int(rng.integers(n_items)))
        sequences.append(np.array(seq, dtype=np.int64))
    return sequences


def group_shoppers(n_customers=60, weeks=6, seed=0, start=1.7e9):
    """Three groups of customers, each buying 3 of its group's 30 items (90 in all) a week: every item is
    about as popular as any other, so only the neighbours tell which new items a customer will buy.
    Returns (histories, timestamps, orders), one order a week."""
    day = 86400.0
    rng = np.random.default_rng(seed)
    histories, stamps, orders = [], [], []
    for c in range(n_customers):
        group, h, t, o = c % 3, [], [], []
        for week in range(weeks):
            for item in sorted(rng.choice(range(group * 30, group * 30 + 30), 3, replace=False).tolist()):
                h.append(item), t.append(start + week * 7 * day + c * 60), o.append(week)
        histories.append(np.array(h)), stamps.append(np.array(t, float)), orders.append(np.array(o))
    return histories, stamps, orders


@pytest.fixture(scope="session")
def split():
    return leave_one_out(planted_sequences(), N_ITEMS)
