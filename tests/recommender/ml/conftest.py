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


@pytest.fixture(scope="session")
def split():
    return leave_one_out(planted_sequences(), N_ITEMS)
