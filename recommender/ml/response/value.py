"""Incremental value of an offer, and intervals on sums of independent Bernoulli outcomes.

p0 is the probability that the customer buys one of the promotion's eligible items without the offer (the
response model), p1 with it. The offer is paid on every redemption, including those that would have been
purchases anyway, so

    E[incremental profit] = p1 x (E[margin] - E[discount]) - p0 x E[margin]

A discount on what the customer buys anyway is a cost: with p0 = p1 (no lift) the offer loses p1 x
E[discount].
"""

from __future__ import annotations

import numpy as np


def treated_probability(p0, lift):
    """p1 from p0 and a relative lift (0.2 = responses 20% more likely with the offer), capped at 1."""
    return np.minimum(np.asarray(p0, np.float64) * (1.0 + np.asarray(lift, np.float64)), 1.0)


def incremental_profit(p0, p1, margin, discount):
    """E[incremental profit] = p1 x (margin - discount) - p0 x margin (elementwise)."""
    p0, p1 = np.asarray(p0, np.float64), np.asarray(p1, np.float64)
    margin, discount = np.asarray(margin, np.float64), np.asarray(discount, np.float64)
    return p1 * (margin - discount) - p0 * margin


def bernoulli_sum_interval(p, weight=None, level=0.9):
    """Expected value and a central interval of sum_i weight_i x B_i, B_i ~ Bernoulli(p_i) independent.

    Normal approximation (mean sum w p, variance sum w^2 p (1 - p)); for a count (no weights) the bounds are
    rounded outwards to whole numbers and clipped at 0 and n. Returns (mean, low, high)."""
    from scipy.stats import norm

    p = np.asarray(p, np.float64)
    w = np.ones_like(p) if weight is None else np.asarray(weight, np.float64)
    mean = float((w * p).sum())
    sd = float(np.sqrt((w * w * p * (1 - p)).sum()))
    z = float(norm.ppf(0.5 + level / 2))
    low, high = mean - z * sd, mean + z * sd
    if weight is None:
        low, high = max(0.0, np.floor(low)), min(float(len(p)), np.ceil(high))
    return mean, float(low), float(high)


def incremental_profit_interval(p0, p1, margin, discount, level=0.9):
    """Expected incremental profit of a batch and a central interval: each recipient adds
    (margin - discount) x B1 - margin x B0 with B1 ~ Bernoulli(p1), B0 ~ Bernoulli(p0), taken as independent
    (normal approximation). Returns (mean, low, high)."""
    from scipy.stats import norm

    p0, p1 = np.asarray(p0, np.float64), np.asarray(p1, np.float64)
    margin, discount = np.asarray(margin, np.float64), np.asarray(discount, np.float64)
    mean = float(incremental_profit(p0, p1, margin, discount).sum())
    variance = ((margin - discount) ** 2 * p1 * (1 - p1) + margin**2 * p0 * (1 - p0)).sum()
    z = float(norm.ppf(0.5 + level / 2))
    return mean, mean - z * float(np.sqrt(variance)), mean + z * float(np.sqrt(variance))
