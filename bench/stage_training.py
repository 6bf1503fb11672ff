"""Scale stage: the deep model's training on the shop's events: loading, building the examples, seconds per
epoch, peak memory, whether the data is streamed, and the longest silence between progress reports.

Two fits, the two a version's training (recommender/services.py) can run:

- sequential: ``interactions_load`` (every item event), the leave-one-out split, the deep model sized to
  the catalogue as a version is (``evaluation.sized_model``), one epoch;
- on orders (the synthetic shop's purchases name their orders, so this is what a version trains there):
  ``purchase_orders_load``, the repeat/explore mixture, its next-basket examples at six cut-offs, one epoch.

Each fits N customers spread evenly over the customer ids, not the first N (the synthetic shop gives its
low ids more orders): ``BENCH_TRAINING_CUSTOMERS``, and ``BENCH_TRAINING_ORDER_CUSTOMERS`` for the fit on
orders, which is far cheaper per customer; every customer when unset or when the shop has fewer. With
fewer than all, the example-building and epoch seconds are extrapolated to every customer linearly (both
are passes over the customers: examples per customer and cut-off, batches of customers or of their
examples), and the rows say so. Peak memory is the whole process's (``resource.getrusage``): the loaded
events, the samples and the networks.

"Data streamed" is read from what the loaders returned: 1 when the histories are ``Ragged`` (flat arrays
filled from a server-side cursor, recommender/interactions.py), 0 for Python lists of arrays.

Progress: every report a fit makes (``progress_callback``, recommender/ml/progress.py) is timed; the
longest gap between the fit's start, its reports and its end is the row's figure. A fit reports within a
stage once ``PROGRESS_SECONDS`` have passed, after each batch or block of customers, so the gap at full
scale is about that plus one unit of work; on a sample that fits in less, the gap is the fit itself.
"""

from __future__ import annotations

import os
import resource
import time

import numpy as np

PROGRESS_GOAL_S = 600  # issue 15: progress reported at least every 10 minutes


def measure(*, database_url: str, scale: float) -> list[dict]:
    from recommender.interactions import interactions_load, purchase_orders_load

    wanted = int(os.environ.get("BENCH_TRAINING_CUSTOMERS") or 0)
    rows = []
    started = time.perf_counter()
    data = interactions_load()
    load_s = time.perf_counter() - started
    load_peak = _peak_rss_gib()
    rows.append(_row(f"training: load {data.n_events:,} events of {len(data.histories):,} customers "
                     "(interactions_load)", load_s, "s"))  # fmt: skip
    rows.append(_streamed_row("interactions_load", data.histories))
    rows += _fit_rows("sequential", data, wanted, _fit_sequential)
    del data
    started = time.perf_counter()
    orders = purchase_orders_load()
    load_s = time.perf_counter() - started
    rows.append(_row(f"training: load {orders.n_events:,} purchases of {len(orders.histories):,} customers "
                     "(purchase_orders_load)", load_s, "s"))  # fmt: skip
    rows.append(_streamed_row("purchase_orders_load", orders.histories))
    wanted = int(os.environ.get("BENCH_TRAINING_ORDER_CUSTOMERS") or wanted)
    rows += _fit_rows("on orders", orders, wanted, _fit_on_orders)
    rows.append(_row("training: peak memory (whole process: events, samples, networks; reference: after the "
                     "first load)", _peak_rss_gib(), "GiB", reference=load_peak))  # fmt: skip
    return rows


def _fit_sequential(data, picked, callback):
    from recommender.ml.data import leave_one_out
    from recommender.ml.evaluation import sized_model

    split = leave_one_out(data.histories.take(picked), len(data.item_ids))
    model, parameters = sized_model("deep", split, {"max_epochs": 1, "max_seconds": None})

    def cut(series):  # the context cut as the histories are (recommender.services._context_parts)
        return [s[: len(s) - 2] if len(s) >= 3 else s for s in series.take(picked)]

    model.fit(
        split.train,
        event_types=cut(data.event_types),
        timestamps=cut(data.timestamps),
        n_items=len(data.item_ids),
        progress_callback=callback,
    )
    return model, f"maxlen {parameters['maxlen']}, batch {parameters['batch_size']}"


def _fit_on_orders(orders, picked, callback):
    from recommender.ml.registry import make_model

    model = make_model("deep", basket_epochs=1)
    model.fit(
        orders.histories.take(picked),
        timestamps=orders.timestamps.take(picked),
        orders=orders.orders.take(picked),
        n_items=len(orders.item_ids),
        progress_callback=callback,
    )
    return model, f"{model.training_examples_:,} examples"


def _fit_rows(mode, data, wanted, fit):
    """Rows of one fit: examples, one epoch (both extrapolated when sampled), the longest progress gap."""
    n_all = len(data.histories)
    n = min(wanted, n_all) if wanted else n_all
    reports = []
    started = time.perf_counter()
    picked = np.unique(np.linspace(0, n_all - 1, n).round().astype(np.int64))  # every (n_all / n)-th customer
    model, shape = fit(data, picked, lambda *args, **step: reports.append(time.perf_counter()))
    ended = time.perf_counter()
    times = [started, *reports, ended]
    gap = max(b - a for a, b in zip(times, times[1:]))
    factor = n_all / n
    note = "" if n == n_all else f"; {n:,} of {n_all:,} customers fitted, extrapolated linearly"
    epoch_s = model.history_[0]["seconds"]
    return [
        _row(f"training ({mode}): building the examples, {len(data.item_ids):,} items ({shape}{note})",
             model.examples_seconds_ * factor, "s"),
        _row(f"training ({mode}): one epoch ({shape}{note})", epoch_s * factor, "s"),
        _row(f"training ({mode}): longest gap between progress reports ({len(reports)} reports in "
             f"{ended - started:.0f} s of fit on {n:,} customers)", gap, "s", f"<= {PROGRESS_GOAL_S}"),
    ]  # fmt: skip


def _streamed_row(loader, histories):
    from recommender.ml.ragged import Ragged

    kind = "Ragged flat arrays" if isinstance(histories, Ragged) else type(histories).__name__
    return _row(f"training: data streamed (1) or held as Python lists of arrays (0): {loader} gives {kind}",
                int(isinstance(histories, Ragged)), "bool", ">= 1")  # fmt: skip


def _peak_rss_gib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def _row(name, value, unit, goal=None, reference=None):
    return {"name": name, "value": value, "unit": unit, "goal": goal, "reference": reference}
