"""Progress reports of a long fit, often enough that a watcher knows it is alive.

A fit's ``progress_callback(epoch, metrics, elapsed, eta)`` is called at the end of each epoch. Within a
stage (building the training examples, the batches of an epoch) it is called too, with the keywords
``stage`` (what is being done), ``done`` and ``total`` (counted in that stage's unit), once at least
``PROGRESS_SECONDS`` have passed since the last report. A callback therefore takes
``(epoch, metrics, elapsed, eta, **step)``.

Why within a stage: over a million customers one epoch or one cut-off's examples take longer than the
45 minutes after which the training job's sweeper fails a training that reported nothing
(promo_site/jobs.py), and longer than the 10 minutes issue 15 allows between two reports. The report is
checked after each unit of work (a batch, a customer), so the gap is PROGRESS_SECONDS plus one unit.
"""

from __future__ import annotations

import time

PROGRESS_SECONDS = 60.0


class Progress:
    """Calls ``callback`` (None: nothing) at the end of each epoch and at most every PROGRESS_SECONDS within
    a stage; ``started`` is the fit's start (``time.perf_counter()``), what ``elapsed`` counts from."""

    def __init__(self, callback, started):
        self.callback = callback
        self.started = started
        self.last = time.perf_counter()

    def step(self, stage, done, total, *, epoch=0, metrics=None, eta=None):
        """Within a stage: ``done`` of ``total`` units; reported if PROGRESS_SECONDS passed since the last report."""
        if self.callback is not None and time.perf_counter() - self.last >= PROGRESS_SECONDS:
            self._call(epoch, metrics or {}, eta, stage=stage, done=int(done), total=int(total))

    def epoch(self, epoch, metrics, eta):
        """At the end of an epoch."""
        if self.callback is not None:
            self._call(epoch, metrics, eta)

    def _call(self, epoch, metrics, eta, **step):
        self.last = time.perf_counter()
        self.callback(epoch, dict(metrics), self.last - self.started, eta, **step)
