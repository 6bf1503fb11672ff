"""Generation values a chunk's candidates at once (Generator._values): the numbers _choose_one computed one
customer and one candidate at a time, bit for bit."""

from types import SimpleNamespace

import numpy as np

from campaigns.lift import Lift
from campaigns.services.generation import Generator
from recommender.ml.response.value import incremental_profit


def reference(lift, customer_id, sums, p_response):
    """One customer and candidate as _choose_one valued them (main at 1fe1a23)."""
    mass, margin, revenue, cost = sums
    margin, revenue, cost = margin / mass, revenue / mass, cost / mass
    p0 = float(p_response)
    p1 = lift.treated(p0, customer_id)
    return float(incremental_profit(p0, p1, margin, cost)), (p0, p1), revenue, cost, margin


def test_the_chunks_values_are_each_customers_own():
    # given a chunk's sums (float32, some masses 0), responses, a stated lift and the uplift model's
    rng = np.random.default_rng(15)
    n, ids = 400, list(range(1000, 1400))
    sums = rng.uniform(0, 5, (n, 3, 4)).astype(np.float32)
    sums[rng.random((n, 3)) < 0.1, 0] = 0
    responses = np.where(rng.random((n, 3)) < 0.02, 0.999, rng.uniform(0, 0.6, (n, 3)))
    uplift = Lift(relative=None, source="model", detail="")
    uplift._uplift.update({c: float(u) for c, u in zip(ids, rng.normal(0, 0.3, n))})
    lifts = [Lift(relative=0.35, source="stated", detail=""), uplift, Lift(relative=4.0, source="stated", detail="")]
    generator = Generator.__new__(Generator)
    generator.candidates = [SimpleNamespace(promotion=SimpleNamespace(id=k)) for k in range(3)]
    generator.lifts = dict(enumerate(lifts))
    # when
    mass, p0, p1, value, revenue, cost, margin = generator._values(ids, sums.astype(np.float64), responses)
    # then
    for i, customer_id in enumerate(ids):
        for k, lift in enumerate(lifts):
            row_sums = sums[i].astype(np.float64)[k]
            assert mass[i, k] == row_sums[0]
            if row_sums[0] <= 0:
                continue
            want = reference(lift, customer_id, row_sums, responses[i, k])
            assert (
                float(value[i, k]),
                (float(p0[i, k]), float(p1[i, k])),
                revenue[i, k],
                cost[i, k],
                margin[i, k],
            ) == want
