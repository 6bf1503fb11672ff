"""What the demo's simulated shop decided for each batch: its true lifts, and the purchases it planned.

Nothing of the product reads this table to measure: the product measures from the shop events the
simulator posts through the API. The dashboard shows the truth beside the measurement ("simulated truth")
once the batch's measurement window has ended, and the coverage test compares the two.
"""

from django.db import models


class SimulatedBatch(models.Model):
    batch = models.OneToOneField("campaigns.Batch", on_delete=models.CASCADE, related_name="simulation")
    seed = models.CharField(max_length=64, help_text="Seeds every draw of this batch's simulation.")
    window_start = models.DateTimeField(help_text="The product's measurement window, as the simulator read it.")
    window_end = models.DateTimeField()
    lifts = models.JSONField(default=dict, help_text="{promotion id: true lift in percentage points}")
    true_uplift = models.FloatField(help_text="Mean over treated customers of (chance with the lift - without).")
    treated = models.PositiveIntegerField(default=0)
    holdout = models.PositiveIntegerField(default=0)
    treated_buyers = models.PositiveIntegerField(default=0)
    holdout_buyers = models.PositiveIntegerField(default=0)
    code_purchases = models.PositiveIntegerField(default=0, help_text="Purchases that carried the message's code.")
    plan = models.JSONField(default=list, blank=True, help_text="The purchases to post, in time order.")
    posted = models.PositiveIntegerField(default=0, help_text="How many of the plan's purchases are posted.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "simulated batches"

    def __str__(self):
        return f"simulation of batch {self.batch_id}"
