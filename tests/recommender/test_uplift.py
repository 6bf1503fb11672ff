"""Uplift metrics against hand-computed cases."""

import math

import numpy as np
import pytest

from recommender.uplift import (
    perfect_qini_curve,
    perfect_uplift_curve,
    qini_auc_score,
    qini_curve,
    random_qini_auc_score,
    random_uplift_at_k,
    random_uplift_auc_score,
    random_uplift_curve_area,
    uplift_at_k,
    uplift_auc_score,
    uplift_curve,
    uplift_curve_area,
)

# Six customers, best predicted uplift first: (score, treated, responded).
#   a 0.9 T 1 | b 0.8 C 0 | c 0.7 T 1 | d 0.6 C 1 | e 0.5 T 0 | f 0.4 C 0
# Given in a shuffled order, so that the functions have to sort.
ORDER = [3, 0, 5, 1, 4, 2]  # d a f b e c
SCORE = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])[ORDER]
TREATED = np.array([1, 0, 1, 0, 1, 0])[ORDER]
RESPONDED = np.array([1, 0, 1, 1, 0, 0])[ORDER]


def test_it_computes_the_uplift_curve_by_hand():
    x, values = uplift_curve(RESPONDED, SCORE, TREATED)

    # top 1: 1/1 - 0 (no control) = 1, x1 | top 2: 1/1 - 0/1 = 1, x2 | top 3: 2/2 - 0/1, x3
    # top 4: 2/2 - 1/2, x4 = 2 | top 5: 2/3 - 1/2, x5 = 5/6 | top 6: 2/3 - 1/3, x6 = 2
    assert x.tolist() == [0, 1, 2, 3, 4, 5, 6]
    assert values == pytest.approx([0, 1, 2, 3, 2, 5 / 6, 2])


def test_it_computes_the_qini_curve_by_hand():
    x, values = qini_curve(RESPONDED, SCORE, TREATED)

    # treated responders - control responders * n_treated / n_control (0 without control)
    # top 4: 2 - 1 * 2/2 = 1 | top 5: 2 - 1 * 3/2 = 0.5 | top 6: 2 - 1 * 3/3 = 1
    assert x.tolist() == [0, 1, 2, 3, 4, 5, 6]
    assert values == pytest.approx([0, 1, 1, 2, 1, 0.5, 1])


def test_it_takes_a_run_of_tied_scores_as_one_step():
    scores = np.array([0.5, 0.5, 0.5, 0.1])
    treated, responded = np.array([1, 0, 1, 0]), np.array([1, 0, 0, 0])

    x, values = uplift_curve(responded, scores, treated)

    # the three tied customers enter together: 1/2 - 0/1 = 0.5, x3
    assert x.tolist() == [0, 3, 4]
    assert values == pytest.approx([0, 1.5, 2.0])  # then 1/2 - 0/2, x4


def test_it_normalises_the_qini_coefficient_between_random_and_perfect():
    # area under the curve above: 0.5 + 1 + 1.5 + 1.5 + 0.75 + 0.75 = 6; random line to (6, 1): 3.
    # Perfect order (treated responders, then the rest, control responders last): points
    # (2, 2), (5, 2), (6, 1): area 2 + 6 + 1.5 = 9.5. Qini = (6 - 3) / (9.5 - 3) = 6/13.
    x, values = perfect_qini_curve(RESPONDED, TREATED)
    assert x.tolist() == [0, 2, 5, 6] and values == pytest.approx([0, 2, 2, 1])

    assert qini_auc_score(RESPONDED, SCORE, TREATED) == pytest.approx(6 / 13)


def test_it_normalises_the_auuc_between_random_and_perfect():
    # area under the uplift curve: 0.5 + 1.5 + 2.5 + 2.5 + 17/12 + 17/12 = 59/6; random line to
    # (6, 2): 6. The perfect curve of scikit-uplift's construction (control responders 1, treated
    # non-responders 1, so score 2*(y == t) + t) passes (2, 2), (4, 4), (5, 10/3), (6, 2): area
    # 43/3. AUUC = (59/6 - 6) / (43/3 - 6) = 23/50.
    assert uplift_auc_score(RESPONDED, SCORE, TREATED) == pytest.approx(23 / 50)
    assert uplift_curve_area(RESPONDED, SCORE, TREATED) == pytest.approx(59 / 6 / 36)


def test_it_builds_the_perfect_uplift_curve_as_scikit_uplift_does():
    # 2 control responders > 1 treated non-responder: the score is 2*(y == t) + y, which puts the
    # treated responder first (3), the control responders next (1), the treated non-responder last.
    treated, responded = np.array([1, 0, 0, 1]), np.array([1, 1, 1, 0])

    x, values = perfect_uplift_curve(responded, treated)

    # top 1: 1/1 - 0 = 1 | top 3: 1/1 - 2/2 = 0 | top 4: 1/2 - 2/2, x4 = -2
    assert x.tolist() == [0, 1, 3, 4]
    assert values == pytest.approx([0, 1, 0, -2])


def test_it_scores_the_perfect_ordering_one_and_random_targeting_zero():
    perfect = RESPONDED * TREATED - RESPONDED * (1 - TREATED)

    assert qini_auc_score(RESPONDED, perfect, TREATED) == pytest.approx(1.0)
    assert random_qini_auc_score(RESPONDED, TREATED) == pytest.approx(0.0)
    assert random_uplift_auc_score(RESPONDED, TREATED) == pytest.approx(0.0)
    # the random line ends at 2 extra responders among 6: mean height 1 over 6
    assert random_uplift_curve_area(RESPONDED, TREATED) == pytest.approx(1 / 6)


def test_it_computes_uplift_at_k_over_the_whole_ranking():
    # top int(6 * 0.5) = 3: a, b, c -> treated 2/2 - control 0/1
    assert uplift_at_k(RESPONDED, SCORE, TREATED, k=0.5) == pytest.approx(1.0)
    # top int(6 * 0.7) = 4 and top 4: a, b, c, d -> 2/2 - 1/2
    assert uplift_at_k(RESPONDED, SCORE, TREATED, k=0.7) == pytest.approx(0.5)
    assert uplift_at_k(RESPONDED, SCORE, TREATED, k=4) == pytest.approx(0.5)
    # top int(6 * 0.3) = 1: a alone, no control customer to compare with
    assert math.isnan(uplift_at_k(RESPONDED, SCORE, TREATED, k=0.3))
    # random targeting: the whole population's 2/3 - 1/3, whatever k
    assert random_uplift_at_k(RESPONDED, TREATED) == pytest.approx(1 / 3)


def test_it_breaks_ties_in_uplift_at_k_as_scikit_uplift_does():
    # scikit-uplift reverses a stable ascending sort: equal scores come last index first,
    # so the top 2 of four equal scores are customers 3 and 2.
    treated, responded = np.array([1, 0, 1, 0]), np.array([1, 0, 0, 1])

    assert uplift_at_k(responded, np.zeros(4), treated, k=2) == pytest.approx(0 - 1)


@pytest.mark.parametrize("k", [0.0, 1.0, 6, -1])
def test_it_rejects_a_k_outside_the_population(k):
    with pytest.raises(ValueError, match="k="):
        uplift_at_k(RESPONDED, SCORE, TREATED, k=k)


def test_it_rejects_labels_other_than_zero_and_one():
    with pytest.raises(ValueError, match="treatment must hold only 0 and 1"):
        qini_auc_score(RESPONDED, SCORE, TREATED * 2)
