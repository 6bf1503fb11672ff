"""Scale stage: attribution and the dashboard for one campaign of millions of tracking events.

Fills, with bench/dashboard.py's SQL (``fill_campaigns``), one campaign of 4 weekly batches sent to every
customer of the synthetic shop (1 in 11 held out): at scale 1 about 3.6M messages and 4.9M tracking
events, and purchases by 3% of treated and 2% of held-out customers after each send. Then, with the real
code: attribution of those purchases (``conversions_attribute``), the aggregates' refresh
(``stats_refresh``), and the dashboard page, all campaigns and filtered to this one (test client, logged
in, median of 20).
"""

from __future__ import annotations

BATCHES = 4
PAGE_RUNS = 20
GOAL_PAGE_S, GOAL_PURCHASES_PER_S = 0.3, 1000


def measure(*, database_url: str, scale: float) -> list[dict]:
    from dashboard import fill_campaigns, logged_in_client, page_time, timed
    from django.db import connection

    from campaigns.models import Batch, MessageEvent
    from campaigns.services.attribution import conversions_attribute
    from campaigns.services.stats import stats_refresh
    from shop.models import Event

    first_purchase = (Event.objects.order_by("-id").values_list("id", flat=True).first() or 0) + 1
    (filled, batch_ids), fill_s = timed(fill_campaigns, BATCHES, campaigns_of=BATCHES)
    campaign_id = Batch.objects.get(id=batch_ids[0]).campaign_id
    tracking = MessageEvent.objects.filter(recipient__batch__campaign_id=campaign_id).count()
    attributed, attribution_s = timed(conversions_attribute, first_id=first_purchase)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    _, refresh_s = timed(stats_refresh, batch_ids=batch_ids)
    client = logged_in_client()
    client.get("/")  # warm: templates, the plot's finder, the connection
    page = page_time(client, "/", runs=PAGE_RUNS)
    filtered = page_time(client, f"/?campaign={campaign_id}&from=2000-01-01", runs=PAGE_RUNS)
    return [
        _row(f"dashboard: fill one campaign, {BATCHES} batches, {tracking:,} tracking events (SQL)", fill_s, "s"),
        _row(f"attribution: {attributed.examined:,} purchases ({attributed.attributed:,} attributed)",
             attributed.examined / attribution_s, "purchases/s", f">= {GOAL_PURCHASES_PER_S}"),
        _row(f"dashboard: stats_refresh of the campaign's {BATCHES} batches", refresh_s, "s"),
        _row(f"dashboard page, all campaigns, median of {PAGE_RUNS} ({page['queries']} queries)",
             page["median_s"], "s", f"<= {GOAL_PAGE_S}"),
        _row(f"dashboard page filtered to the campaign, median of {PAGE_RUNS}", filtered["median_s"], "s",
             f"<= {GOAL_PAGE_S}"),
    ]  # fmt: skip


def _row(name, value, unit, goal=None):
    return {"name": name, "value": value, "unit": unit, "goal": goal, "reference": None}
