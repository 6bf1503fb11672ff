"""The deep model's softmax over the catalogue, taken in float32 a block of rows at a time
(recommender/ml/deep_repeat.py): within a few float32 roundings of the whole array's float64 softmax, the same
order of items in every row, written over its input."""

import numpy as np
import pytest

from recommender.ml.deep_repeat import BLOCK_ROWS, _softmax_rows


def whole_softmax(logits):
    """What predict_proba computed before (main at e310bdc): the chunk's float64 copy, whole."""
    logits = np.asarray(logits, np.float64)
    logits -= logits.max(axis=1, keepdims=True)
    proba = np.exp(logits)
    return (proba / proba.sum(axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("rows", [0, 1, BLOCK_ROWS - 1, BLOCK_ROWS, 3 * BLOCK_ROWS + 5])
def test_blocks_give_the_whole_arrays_float64_softmax_within_float32_roundings(rows):
    # given: logits of several scales, with items ranked out (-inf), over more columns than a block's rows
    rng = np.random.default_rng(rows)
    logits = (rng.normal(size=(rows, 5000)) * rng.choice([0.1, 3.0, 40.0], size=(rows, 1))).astype(np.float32)
    logits[rng.random(logits.shape) < 0.01] = -np.inf
    expected = whole_softmax(logits)
    # when
    proba = _softmax_rows(logits)
    # then: the same numbers to a relative 1e-5 (float32 holds 6e-8; exp and the sum add a few roundings),
    # written over the input (no second chunk-sized array), each row summing to 1
    assert proba is logits and proba.dtype == np.float32
    normal = expected >= 1e-30  # below, float32's subnormals hold fewer digits, in either computation
    assert np.allclose(proba[normal], expected[normal], rtol=1e-5, atol=0)
    assert np.all(np.abs(proba - expected) <= 1e-12 + 1e-5 * expected)
    assert np.allclose(proba.sum(axis=1), 1.0, atol=1e-4)


def test_the_order_of_items_is_the_float64_softmaxs():
    # given: logits over a catalogue's size, with close values (the order is what generation shows)
    rng = np.random.default_rng(7)
    logits = (rng.normal(size=(8, 100_000)) * 3).astype(np.float32)
    expected = np.argsort(-whole_softmax(logits), axis=1, kind="stable")[:, :20]
    # when
    proba = _softmax_rows(logits)
    # then: every row's top 20 items, in order
    assert np.array_equal(np.argsort(-proba, axis=1, kind="stable")[:, :20], expected)


def test_an_item_ranked_out_gets_no_probability():
    logits = np.array([[0.0, -np.inf, 1.0]], np.float32)
    proba = _softmax_rows(logits)
    assert proba[0, 1] == 0.0 and proba[0, 2] > proba[0, 0] > 0
