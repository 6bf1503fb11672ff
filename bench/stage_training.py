"""Scale stage: the deep model's training on the shop's events: loading, seconds per epoch, peak memory.

Loads every event as a training does (``recommender.interactions.interactions_load``, all customers), then
fits the registry's deep model (``recommender.ml.registry.make_model("deep", max_epochs=1)``) for one
epoch on the first N customers' histories (``BENCH_TRAINING_CUSTOMERS``, default 3,000; all of them when
the shop has fewer) and extrapolates the epoch to every customer linearly (an epoch is one pass over the
histories in batches of ``batch_size``), stated as such in the row. Peak memory is the whole process's:
the loaded events, the lists of histories and the network.

Streaming: ``interactions_load`` reads the events into one NumPy array and splits it into a Python list of
per-customer arrays (three lists: items, types, times), and the deep model's ``fit`` takes those lists and
builds its training arrays in memory; nothing is streamed. The rows say so.
"""

from __future__ import annotations

import os
import resource
import time

TRAIN_CUSTOMERS = 3_000
PROGRESS_GOAL_S = 600  # progress is reported per epoch: an epoch must end within 10 minutes


def measure(*, database_url: str, scale: float) -> list[dict]:
    from recommender.interactions import interactions_load
    from recommender.ml.registry import make_model

    started = time.perf_counter()
    data = interactions_load()
    load_s = time.perf_counter() - started
    load_peak = _peak_rss_gib()
    n_all = len(data.histories)
    n_train = min(n_all, int(os.environ.get("BENCH_TRAINING_CUSTOMERS") or TRAIN_CUSTOMERS))
    epochs = []
    model = make_model("deep", max_epochs=1, max_seconds=None, verbose=False, seed=0)
    started = time.perf_counter()
    model.fit(
        data.histories[:n_train],
        event_types=data.event_types[:n_train],
        timestamps=data.timestamps[:n_train],
        n_items=len(data.item_ids),
        progress_callback=lambda epoch, metrics, elapsed, eta: epochs.append(elapsed),
    )
    fit_s = time.perf_counter() - started
    epoch_all_s = fit_s * n_all / n_train
    streamed = not isinstance(data.histories, list)
    note = "" if n_train == n_all else f", {n_train:,} of {n_all:,} customers fitted, extrapolated"
    return [
        _row(f"training: load {data.n_events:,} events of {n_all:,} customers (interactions_load)", load_s, "s"),
        _row(f"training: one epoch of the deep model, {len(data.item_ids):,} items{note}", epoch_all_s, "s",
             f"<= {PROGRESS_GOAL_S}"),
        _row("training: peak memory (whole process: events, histories, network)", _peak_rss_gib(), "GiB",
             reference=load_peak),
        _row("training: data streamed (1) or held as Python lists of arrays (0)", int(streamed), "bool", ">= 1"),
    ]  # fmt: skip


def _peak_rss_gib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def _row(name, value, unit, goal=None, reference=None):
    return {"name": name, "value": value, "unit": unit, "goal": goal, "reference": reference}
