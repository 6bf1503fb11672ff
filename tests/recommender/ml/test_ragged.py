"""recommender.ml.ragged.Ragged: per-customer arrays in one flat array, read as the list it replaces."""

import numpy as np
import pytest

from recommender.ml.ragged import Ragged

ROWS = [[3, 1, 4], [], [1, 5], [9]]


def test_it_reads_like_the_list_of_arrays():
    ragged = Ragged.from_lists(ROWS)
    assert len(ragged) == 4
    assert [r.tolist() for r in ragged] == ROWS
    assert ragged[2].tolist() == [1, 5]
    assert ragged[-1].tolist() == [9]
    assert ragged.lengths.tolist() == [3, 0, 2, 1]
    assert ragged.row_ids().tolist() == [0, 0, 0, 2, 2, 3]


def test_a_row_is_a_view_of_the_flat_values():
    ragged = Ragged.from_lists(ROWS)
    ragged[0][1] = 7
    assert ragged.values[1] == 7


def test_slices_and_index_lists_give_raggeds_of_those_rows():
    ragged = Ragged.from_lists(ROWS)
    assert [r.tolist() for r in ragged[1:3]] == [[], [1, 5]]
    assert [r.tolist() for r in ragged[::2]] == [[3, 1, 4], [1, 5]]
    assert [r.tolist() for r in ragged[[3, 0, 3]]] == [[9], [3, 1, 4], [9]]
    assert [r.tolist() for r in ragged.take(np.array([False, True, True, False]))] == [[], [1, 5]]
    assert len(ragged[5:9]) == 0


def test_it_refuses_a_row_out_of_range_and_inconsistent_offsets():
    ragged = Ragged.from_lists(ROWS)
    with pytest.raises(IndexError):
        ragged[4]
    with pytest.raises(ValueError):
        Ragged(np.arange(3), [0, 2])
    with pytest.raises(ValueError):
        Ragged(np.arange(3), [0, 2, 1, 3])


def test_of_and_with_values():
    ragged = Ragged.from_lists([[0, 1], [], [2, 3, 4]])
    assert Ragged.of(ragged) is ragged
    assert [r.tolist() for r in Ragged.of(ROWS)] == ROWS
    assert [r.tolist() for r in ragged.with_values(np.arange(5) * 10)] == [[0, 10], [], [20, 30, 40]]
    with pytest.raises(ValueError):
        ragged.with_values(np.arange(4))


def test_an_empty_one():
    ragged = Ragged.from_lists([])
    assert len(ragged) == 0
    assert list(ragged) == []
    assert ragged.lengths.tolist() == []
