"""Explanations faithful to a model: what in a customer's history a recommended item's score rests on.

- A new item (never bought): the history item whose removal lowers the item's score the most, found by
  scoring the history with each candidate removed, all in one batch (:func:`removal_reasons`); named only
  when the drop is material (at least ``MATERIAL`` of the score).
- A buy-again item: how often and when the customer bought it (:func:`repeat_pattern`).
"""

from __future__ import annotations

import numpy as np

MATERIAL = 0.05  # a removal that lowers the score by less than this share of it explains nothing
CANDIDATES = 50  # the most recent distinct history items tried: the batch is at most this many histories
DAY = 86400.0


def removal_reasons(score, history, items, context=None, candidates=CANDIDATES, material=MATERIAL):
    """For each item, (position in history of the item whose removal lowers its score most, relative drop).

    ``score`` is the model: its ``score_items(histories, items, **context)`` where it has one (the same
    numbers as ``score(...)[:, items]``, cheaper), else its ``score(histories, **context)``; a plain
    function is taken as ``score(histories, **context)``. ``context`` holds per-event arrays aligned with
    ``history`` (timestamps, orders, event types), cut like the history. One call to ``score`` with a batch
    of ``min(candidates, distinct items)`` histories, each without every event of one distinct item (the
    most recent ones). The position is -1 where no removal lowers the score by ``material`` of it.
    """
    history = np.asarray(history, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    out = np.full(len(items), -1, dtype=np.int64), np.zeros(len(items))
    if not len(history) or not len(items):
        return out
    context = {name: np.asarray(values) for name, values in (context or {}).items() if values is not None}
    last = _last_positions(history)[:candidates]  # (item, its last position), most recent first
    batch = [history] + [history[history != item] for item, _ in last]
    batch_context = {name: [values] + [values[history != item] for item, _ in last] for name, values in context.items()}
    scores = _scores_of(score, batch, items, batch_context)
    full, without = scores[0], scores[1:]
    drop = (full[None, :] - without) / np.maximum(np.abs(full[None, :]), 1e-12)
    best = np.argmax(drop, axis=0)
    best_drop = drop[best, np.arange(len(items))]
    positions = np.array([position for _item, position in last])[best]
    keep = best_drop >= material
    out[0][keep] = positions[keep]
    out[1][:] = np.where(keep, best_drop, 0.0)
    return out


def _scores_of(model, batch, items, context):
    """(len(batch), len(items)) float64 scores of the items for each history."""
    if hasattr(model, "score_items"):
        return np.asarray(model.score_items(batch, items, **context), dtype=np.float64)
    scorer = model.score if hasattr(model, "score") else model
    return np.asarray(scorer(batch, **context), dtype=np.float64)[:, items]


def _last_positions(history):
    """[(item, position of its last event)] for each distinct item, the most recent first."""
    reversed_items, first_from_end = np.unique(history[::-1], return_index=True)
    positions = len(history) - 1 - first_from_end
    order = np.argsort(-positions, kind="stable")
    return list(zip(reversed_items[order].tolist(), positions[order].tolist()))


def repeat_pattern(timestamps, now):
    """(times bought, mean days between purchases or None, days since the last one) from its purchase times.

    Purchases on the same day count once: a basket holding the item twice is one purchase of it.
    """
    days = np.unique(np.floor(np.asarray(timestamps, dtype=np.float64) / DAY))
    if not len(days):
        return 0, None, None
    every = float((days[-1] - days[0]) / (len(days) - 1)) if len(days) > 1 else None
    return int(len(days)), every, float(max(now - np.max(timestamps), 0.0) / DAY)


def repeat_text(times, every_days, days_ago):
    """ "you buy this about every 12 days; last time 9 days ago" (or "you bought this once, 30 days ago")."""
    ago = "today" if days_ago is not None and days_ago < 1 else f"{days_ago:.0f} days ago"
    if times <= 1 or every_days is None:
        return f"you bought this once, {ago}"
    return f"you buy this about every {max(every_days, 1):.0f} days; last time {ago}"
