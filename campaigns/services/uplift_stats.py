"""Treated versus holdout: differences with 95% intervals, and a verdict in plain words.

Proportions (response rate): the difference p_t - p_c with Wald's interval,
    se = sqrt(p_t (1 - p_t) / n_t + p_c (1 - p_c) / n_c),   p_t - p_c ± z_0.975 · se.
Means (revenue and profit per customer): Welch's interval,
    s² = (Σx² - (Σx)² / n) / (n - 1) per group,   se = sqrt(s_t² / n_t + s_c² / n_c),
    df = se⁴ / ((s_t² / n_t)² / (n_t - 1) + (s_c² / n_c)² / (n_c - 1)),   m_t - m_c ± t_0.975,df · se.
Both work from sufficient statistics (n, Σx, Σx²), which BatchUplift stores per group, so batches pool
by adding them (a customer in two batches counts twice: the pooled figure treats sends as the units).
Incremental totals scale the per-customer difference (and its interval) by the treated count.
"""

import math
from dataclasses import dataclass

from scipy import stats

LEVEL = 0.95
Z = stats.norm.ppf(0.5 + LEVEL / 2)  # 1.959964...
SUMS = (
    "n",
    "responders",
    "revenue",
    "revenue_sq",
    "profit",
    "profit_sq",
    "buyers",
    "predicted_n",
    "predicted",
    "predicted_var",
)
PREDICTION_LEVEL = 0.9  # the review page's intervals


@dataclass
class Difference:
    treated: float  # the treated group's rate or mean
    control: float
    estimate: float  # treated - control
    low: float
    high: float
    unit: str  # "points" (percentage points), "per customer" or "in total"
    se: float = 0.0  # standard error of the estimate

    @property
    def significant(self):
        return self.low > 0 or self.high < 0

    @property
    def verdict(self):
        return uplift_verdict(self)

    def scaled(self, factor):
        """The same difference times factor (e.g. per customer x treated customers = incremental total)."""
        return Difference(
            self.treated * factor, self.control * factor, self.estimate * factor, self.low * factor,
            self.high * factor, "in total", self.se * abs(factor),
        )  # fmt: skip


def proportion_difference(x_t, n_t, x_c, n_c):
    """Difference of two proportions with Wald's 95% interval; None when a group is empty."""
    if n_t < 1 or n_c < 1:
        return None
    p_t, p_c = x_t / n_t, x_c / n_c
    se = math.sqrt(p_t * (1 - p_t) / n_t + p_c * (1 - p_c) / n_c)
    diff = p_t - p_c
    return Difference(p_t, p_c, diff, diff - Z * se, diff + Z * se, "points", se)


def mean_difference(sum_t, sumsq_t, n_t, sum_c, sumsq_c, n_c):
    """Difference of two means with Welch's 95% interval, from sums and sums of squares; None below 2 a group."""
    if n_t < 2 or n_c < 2:
        return None
    m_t, m_c = sum_t / n_t, sum_c / n_c
    var_t = max(sumsq_t - sum_t * sum_t / n_t, 0.0) / (n_t - 1)
    var_c = max(sumsq_c - sum_c * sum_c / n_c, 0.0) / (n_c - 1)
    a, b = var_t / n_t, var_c / n_c
    se = math.sqrt(a + b)
    if se == 0:
        return Difference(m_t, m_c, m_t - m_c, m_t - m_c, m_t - m_c, "per customer", 0.0)
    df = (a + b) ** 2 / (a * a / (n_t - 1) + b * b / (n_c - 1))
    half = stats.t.ppf(0.5 + LEVEL / 2, df) * se
    return Difference(m_t, m_c, m_t - m_c, m_t - m_c - half, m_t - m_c + half, "per customer", se)


def uplift_verdict(difference):
    """ "not significant yet" or, e.g., "+2.1 points, significant" / "+0.42 per customer, significant"."""
    if difference is None:
        return "no data yet"
    if not difference.significant:
        return "not significant yet"
    if difference.unit == "points":
        return f"{difference.estimate * 100:+.1f} points, significant"
    return f"{difference.estimate:+,.2f} {difference.unit}, significant"


@dataclass
class Comparison:
    """Treated vs one control group (the batch's holdout or the global holdout)."""

    n_treated: int
    n_control: int
    response: Difference | None
    revenue: Difference | None
    profit: Difference | None

    @property
    def incremental_revenue(self):
        return self.revenue.scaled(self.n_treated) if self.revenue else None

    @property
    def incremental_profit(self):
        return self.profit.scaled(self.n_treated) if self.profit else None


def differences_sum(differences):
    """The sum of independent differences (e.g. incremental revenue of successive batches), normal interval."""
    differences = [d for d in differences if d is not None]
    if not differences:
        return None
    total = sum(d.estimate for d in differences)
    se = math.sqrt(sum(d.se * d.se for d in differences))
    treated, control = sum(d.treated for d in differences), sum(d.control for d in differences)
    return Difference(treated, control, total, total - Z * se, total + Z * se, "in total", se)


def groups_pool(many):
    """Add up the sufficient statistics of several BatchUplift.groups, group by group."""
    pooled = {}
    for groups in many:
        for name, sums in groups.items():
            into = pooled.setdefault(name, dict.fromkeys(SUMS, 0.0))
            for key in SUMS:
                into[key] += sums.get(key, 0.0)
    return pooled


@dataclass
class Promise:
    """What the model promised a group (Σ p over its customers, and the 90% interval of a sum of independent
    Bernoulli draws: Σ p ± z · sqrt(Σ p (1 - p)), rounded outwards to whole customers) against what came."""

    n: int
    predicted: float
    low: int
    high: int
    actual: int

    @property
    def kept(self):
        """Whether the actual count lies inside the interval."""
        return self.low <= self.actual <= self.high

    @property
    def ratio(self):
        """Predicted ÷ actual (above 1: the model promised more than came); None with nobody bought."""
        return self.predicted / self.actual if self.actual else None


def group_promise(sums):
    """The Promise of one group of BatchUplift.groups (or of their pool); None without predictions."""
    if not sums or not sums.get("predicted_n"):
        return None
    z = stats.norm.ppf(0.5 + PREDICTION_LEVEL / 2)
    predicted, sd = sums["predicted"], math.sqrt(max(sums.get("predicted_var", 0.0), 0.0))
    return Promise(
        n=int(sums["predicted_n"]),
        predicted=predicted,
        low=max(0, math.floor(predicted - z * sd)),
        high=min(int(sums["predicted_n"]), math.ceil(predicted + z * sd)),
        actual=int(sums.get("buyers", 0)),
    )


def groups_compare(groups, control="holdout"):
    """The Comparison of the treated group with `control` ("holdout" or "global_holdout"), or None."""
    t, c = groups.get("treated"), groups.get(control)
    if not t or not c or not t["n"] or not c["n"]:
        return None
    return Comparison(
        n_treated=int(t["n"]),
        n_control=int(c["n"]),
        response=proportion_difference(t["responders"], t["n"], c["responders"], c["n"]),
        revenue=mean_difference(t["revenue"], t["revenue_sq"], t["n"], c["revenue"], c["revenue_sq"], c["n"]),
        profit=mean_difference(t["profit"], t["profit_sq"], t["n"], c["profit"], c["profit_sq"], c["n"]),
    )
