"""{% simulated_truth %}: beside the measured uplift, what the demo's simulated shop really did.

Shown only once a batch's measurement window has ended: before that the demo user sees what any marketer
sees, the product's measurement alone. The truth is the simulator's record (SimulatedBatch); the
measurement is the product's (BatchUplift, treated vs holdout), read as the dashboard reads it.
"""

from dataclasses import dataclass

from django import template
from django.utils import timezone

from campaigns.models import BatchUplift
from campaigns.services.uplift_stats import groups_compare
from demo_shop.models import SimulatedBatch

register = template.Library()


@dataclass
class TruthRow:
    simulation: SimulatedBatch
    measured: object  # uplift_stats.Difference of the response rate, or None before the aggregates

    @property
    def true_points(self):
        return self.simulation.true_uplift * 100

    @property
    def measured_points(self):
        """(estimate, low, high) of the measured response uplift in percentage points, or None."""
        m = self.measured
        return None if m is None else (m.estimate * 100, m.low * 100, m.high * 100)

    @property
    def covered(self):
        m = self.measured
        return None if m is None else m.low <= self.simulation.true_uplift <= m.high


def simulated_truth_rows(now=None):
    """The truth and the measurement of every simulated batch whose window has ended, newest first;
    and how many are still measuring."""
    now = now or timezone.now()
    simulations = SimulatedBatch.objects.select_related("batch__campaign").order_by("-window_end")
    ended = [s for s in simulations if s.window_end <= now]
    uplifts = {u.batch_id: u for u in BatchUplift.objects.filter(batch_id__in=[s.batch_id for s in ended])}
    rows = []
    for simulation in ended:
        comparison = groups_compare(uplifts[simulation.batch_id].groups) if simulation.batch_id in uplifts else None
        rows.append(TruthRow(simulation, comparison.response if comparison else None))
    return rows, len(simulations) - len(ended)


@register.inclusion_tag("demo_shop/_simulated_truth.html")
def simulated_truth():
    rows, open_windows = simulated_truth_rows()
    return {"truth_rows": rows, "open_windows": open_windows}
