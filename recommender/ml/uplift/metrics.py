"""Uplift metrics, matching scikit-uplift 0.5 (``uplift_at_k`` with ``strategy="overall"``,
``uplift_curve``, ``qini_curve``, ``qini_auc_score``, ``uplift_auc_score``), vectorised.

Random targeting is reported as its *expectation*, never as a random draw: the straight line from
the origin to the end of the curve (scikit-uplift's own baseline), and for uplift@k the whole
population's response rate difference. Strictly, the expectation of a ratio of random counts differs
from that line by a small-sample bias of order 1/n; at campaign sizes it is negligible, and using
the line keeps the figures exact and reproducible.
"""

from __future__ import annotations

import numpy as np


def check_outcomes(y, treatment, uplift=None):
    """Validated float arrays [y, treatment(, uplift)]: same non-zero length, 0/1 labels, no NaN."""
    y, treatment = np.asarray(y), np.asarray(treatment)
    arrays = [y, treatment] + ([] if uplift is None else [np.asarray(uplift, dtype=np.float64)])
    if len({len(a) for a in arrays}) != 1 or not len(y):
        raise ValueError("y, uplift and treatment must be non-empty and of the same length")
    for name, values in (("y", y), ("treatment", treatment)):
        if not np.isin(values, (0, 1)).all():
            raise ValueError(f"{name} must hold only 0 and 1")
    if uplift is not None and np.isnan(arrays[2]).any():
        raise ValueError("uplift holds NaN")
    return [a.astype(np.float64) for a in arrays]


def _ratio(numerator, denominator):
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator != 0)


def _cumulative(y, uplift, treatment):
    """Counts over the top of the ranking, at the end of each run of tied scores.

    Highest score first; a run of equal scores is one step, so the order within a tie never
    matters. Returns (n_all, n_treated, n_control, responders_treated, responders_control).
    """
    y, treatment, uplift = check_outcomes(y, treatment, uplift)
    order = np.argsort(uplift, kind="mergesort")[::-1]
    y, treatment, uplift = y[order], treatment[order], uplift[order]
    ends = np.r_[np.flatnonzero(np.diff(uplift)), uplift.size - 1]
    n_all = (ends + 1).astype(np.float64)
    n_treated = np.cumsum(treatment)[ends]
    responders_treated = np.cumsum(y * treatment)[ends]
    responders_control = np.cumsum(y * (1 - treatment))[ends]
    return n_all, n_treated, n_all - n_treated, responders_treated, responders_control


def uplift_curve(y, uplift, treatment):
    """Points (x, value) of the uplift curve, starting at (0, 0).

    At the top x customers: (treated response rate - control response rate) * x, a rate being 0
    where its group is empty.
    """
    n_all, n_t, n_c, r_t, r_c = _cumulative(y, uplift, treatment)
    return np.r_[0.0, n_all], np.r_[0.0, (_ratio(r_t, n_t) - _ratio(r_c, n_c)) * n_all]


def qini_curve(y, uplift, treatment):
    """Points (x, value) of the Qini curve, starting at (0, 0).

    At the top x customers: treated responders - control responders * n_treated / n_control.
    """
    n_all, n_t, n_c, r_t, r_c = _cumulative(y, uplift, treatment)
    return np.r_[0.0, n_all], np.r_[0.0, r_t - r_c * _ratio(n_t, n_c)]


def perfect_uplift_curve(y, treatment):
    """The uplift curve of the best possible ordering (scikit-uplift's construction)."""
    y, treatment = check_outcomes(y, treatment)
    control_responders = np.sum((y == 1) & (treatment == 0))
    treated_non_responders = np.sum((y == 0) & (treatment == 1))
    summand = y if control_responders > treated_non_responders else treatment
    return uplift_curve(y, 2 * (y == treatment) + summand, treatment)


def perfect_qini_curve(y, treatment):
    """The Qini curve of the best ordering, negative effects included: treated responders first,
    control responders last."""
    y, treatment = check_outcomes(y, treatment)
    return qini_curve(y, y * treatment - y * (1 - treatment), treatment)


def random_curve(curve):
    """The expected curve of random targeting: the straight line from (0, 0) to the curve's end."""
    x, values = curve
    return np.array([0.0, x[-1]]), np.array([0.0, values[-1]])


def _normalised_area(curve, perfect):
    """(area - random area) / (perfect area - random area), the random area being under the line."""
    line_x, line_values = random_curve(perfect)
    random_area = np.trapezoid(line_values, line_x)
    area, perfect_area = np.trapezoid(curve[1], curve[0]), np.trapezoid(perfect[1], perfect[0])
    return float((area - random_area) / (perfect_area - random_area))


def qini_auc_score(y, uplift, treatment):
    """Qini coefficient: area between the Qini curve and the random line, over the perfect one's.

    As scikit-uplift's ``qini_auc_score`` (``negative_effect=True``): 1 for the perfect ordering,
    0 for random targeting.
    """
    return _normalised_area(qini_curve(y, uplift, treatment), perfect_qini_curve(y, treatment))


def uplift_auc_score(y, uplift, treatment):
    """AUUC: area between the uplift curve and the random line, over the perfect one's.

    As scikit-uplift's ``uplift_auc_score``: 1 for the perfect ordering, 0 for random targeting.
    """
    return _normalised_area(uplift_curve(y, uplift, treatment), perfect_uplift_curve(y, treatment))


def random_uplift_auc_score(y, treatment):
    """``uplift_auc_score`` of random targeting's expected curve (0 up to rounding, by construction)."""
    curve = uplift_curve(y, np.zeros(len(y)), treatment)  # one tie: only the end point
    return _normalised_area(random_curve(curve), perfect_uplift_curve(y, treatment))


def random_qini_auc_score(y, treatment):
    """``qini_auc_score`` of random targeting's expected curve (0 up to rounding, by construction)."""
    curve = qini_curve(y, np.zeros(len(y)), treatment)
    return _normalised_area(random_curve(curve), perfect_qini_curve(y, treatment))


def uplift_curve_area(y, uplift, treatment):
    """Area under the (unnormalised) uplift curve divided by n squared: its mean height as a
    share of the population. Random targeting gets half the overall uplift (``random_uplift_curve_area``)."""
    x, values = uplift_curve(y, uplift, treatment)
    return float(np.trapezoid(values, x) / x[-1] ** 2)


def random_uplift_curve_area(y, treatment):
    """``uplift_curve_area`` of random targeting's expected curve: half the overall uplift."""
    x, values = random_curve(uplift_curve(y, np.zeros(len(y)), treatment))
    return float(np.trapezoid(values, x) / x[-1] ** 2)


def _top_count(k, n):
    kind = np.asarray(k).dtype.kind
    if kind == "f" and 0 < k < 1:
        return int(n * k)  # scikit-uplift truncates
    if kind in "iu" and 0 < k < n:
        return int(k)
    raise ValueError(f"k={k!r}: give a fraction in (0, 1) or a whole number in (0, {n})")


def uplift_at_k(y, uplift, treatment, k=0.3):
    """Uplift among the top k customers by predicted uplift, over both groups together.

    scikit-uplift's ``uplift_at_k(strategy="overall")``: rank everyone (ties in the same order as
    scikit-uplift's reversed stable sort), keep the first ``int(n * k)`` (or ``k`` when whole), and
    return treated response rate - control response rate among them; NaN when one group is absent
    there.
    """
    y, treatment, uplift = check_outcomes(y, treatment, uplift)
    top = np.argsort(uplift, kind="mergesort")[::-1][: _top_count(k, len(y))]
    treated = treatment[top] == 1
    if treated.all() or not treated.any():
        return float("nan")
    return float(y[top][treated].mean() - y[top][~treated].mean())


def random_uplift_at_k(y, treatment):
    """Expected uplift@k of random targeting, for any k: the whole population's uplift."""
    y, treatment = check_outcomes(y, treatment)
    return float(y[treatment == 1].mean() - y[treatment == 0].mean())


def uplift_scores(y, uplift, treatment, k=0.3):
    """The figures reported for a ranking: uplift@k, Qini coefficient and AUUC."""
    return {
        "uplift_at_k": uplift_at_k(y, uplift, treatment, k=k),
        "qini": qini_auc_score(y, uplift, treatment),
        "auuc": uplift_auc_score(y, uplift, treatment),
    }
