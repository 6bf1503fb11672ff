"""Dashboard benchmark: a million messages, the aggregates' refresh, and the page's time.

    python bench/dashboard.py --json bench/out/dashboard.json [--messages 1000000] [--batches 10]

Fills a database of its own (promo_site_bench_dashboard) with SQL generate_series: customers, 10 sent
batches of 100,000 messages plus a 10% holdout each, about 1.34 messages events a message (delivered
97%, opened 30% of which some bots, clicked 6%, "not interested" 1%) and purchases by 3% of treated and
2% of held-out customers in the two weeks after each send, of 200 items, half of them the eligible items of
the promotion every customer is given (or, held out, would have been: the measured response "a purchase of
the promotion's eligible items", with p1 = 0.03 and p0 = 0.02 each). Then it measures, with the real code:

1. attribution of those purchases (conversions_attribute over all of them),
2. the full refresh of every batch's aggregates (stats_refresh over all batches),
3. the incremental refresh of one batch after 1,000 new events (what the 5-minute beat does per batch),
   and that batch's refresh in its parts (funnel per day; groups' sums, of which predicted against actual),
4. the dashboard page and its CSV export (Django test client, logged in; median of 5, with the query count).

It prints the figures and writes them as JSON; docs/benchmarks.md records a run by hand.
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
BENCH_DB = "promo_site_bench_dashboard"
BASE_URL = os.environ.get("BENCH_DATABASE_SERVER", "postgres://postgres@127.0.0.1:5432")
os.environ["DATABASE_URL"] = f"{BASE_URL}/{BENCH_DB}"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "promo_site.settings")
os.environ.setdefault("DEBUG", "1")  # a development benchmark: the settings run safe (and need a key) without it
os.environ["ALLOWED_HOSTS"] = "testserver"  # the page is timed through the test client

import django  # noqa: E402

django.setup()

import psycopg  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402

sys.path.insert(0, str(REPO / "bench"))
from ingest import machine  # noqa: E402


def reset_database():
    with psycopg.connect(f"{BASE_URL}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {BENCH_DB}")
    connection.close()
    call_command("migrate", verbosity=0)


def sql(statement, params=()):
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.rowcount


def fill(messages, n_batches):
    from django.contrib.auth import get_user_model

    from campaigns.models import Audience, Batch, Campaign, Promotion
    from shop.models import Item

    per_batch = messages // n_batches
    customers = per_batch + per_batch // 10  # every customer is in every batch: 1 in 11 held out
    sql(
        """INSERT INTO shop_customer (external_id, email, name, attributes, demographics, marketing_consent,
               consent_source, suppressed, suppressed_reason, time_zone, is_stub, created_at, updated_at)
           SELECT 'b' || g, '', '', '{}', '{}', true, '', false, '', 'UTC', false, now(), now()
           FROM generate_series(1, %s) g""",
        [customers],
    )
    user = get_user_model().objects.create_superuser("bench", "bench@example.test", "bench")
    items = Item.objects.bulk_create(
        Item(external_id=f"i{n}", category_path="Bench > Even" if n % 2 == 0 else "Bench > Odd", price=20)
        for n in range(200)
    )
    offer = Promotion.objects.create(
        name="15% off Bench > Even", kind="percent_off", value=15, categories=["Bench > Even"],
        ends_at=timezone.now() + timezone.timedelta(days=30), code_mode="shared", shared_code="BENCH15",
    )  # fmt: skip
    audience = Audience.objects.create(name="Everyone")
    start = timezone.now() - timezone.timedelta(days=7 * n_batches + 14)
    batch_ids = []
    for n in range(n_batches):
        campaign = Campaign.objects.get_or_create(name=f"Campaign {n // 2 + 1}", audience=audience)[0]
        sent = start + timezone.timedelta(days=7 * n)
        batch = Batch.objects.create(
            campaign=campaign, number=n % 2 + 1, status="sent", seed=n, created_by=user, generated_at=sent,
            send_started_at=sent, sent_at=sent,
        )  # fmt: skip
        batch_ids.append(batch.id)
        sql(
            """INSERT INTO campaigns_recipient (batch_id, customer_id, outcome, reason, code, items, alternatives,
                   subject, body_html, render_error, send_status, sent_at, attempts, provider_message_id, send_error,
                   promotion_id, p_response, p_baseline, delivery_status)
               SELECT %(batch)s, c.id, CASE WHEN c.id %% 11 = 0 THEN 'excluded' ELSE 'recipient' END,
                   CASE WHEN c.id %% 11 = 0 THEN 'holdout' ELSE '' END, '', '[]', '[]', '', '', '',
                   CASE WHEN c.id %% 11 = 0 THEN '' ELSE 'sent' END,
                   CASE WHEN c.id %% 11 = 0 THEN NULL ELSE %(sent)s::timestamptz END, 0, '', '',
                   %(promotion)s, 0.03, 0.02, ''
               FROM shop_customer c""",
            {"batch": batch.id, "sent": sent, "promotion": offer.id},
        )
    events = sql(
        """INSERT INTO campaigns_messageevent (recipient_id, kind, source, event_id, occurred_at, is_bot, bot_reason,
               user_agent, detail, received_at)
           SELECT r.id, k.kind, 'provider', k.kind || '-' || r.id, r.sent_at + k.delay * (1 + r.id %% 72),
               k.kind = 'opened' AND r.id %% 17 = 0, '', '', '{}', now()
           FROM campaigns_recipient r
           JOIN (VALUES ('delivered', 97, interval '1 minute'), ('opened', 30, interval '1 hour'),
                        ('clicked', 6, interval '2 hours'), ('not_interested', 1, interval '3 hours'))
               AS k(kind, pct, delay) ON (r.id * 7919) %% 100 < k.pct
           WHERE r.outcome = 'recipient'"""
    )
    purchases = sql(
        """INSERT INTO shop_event (customer_id, item_id, type, quantity, value, discount, occurred_at, source,
               client_event_id, received_at)
           SELECT r.customer_id, %(first_item)s + r.id %% 200, 'purchase', 1, 20 + r.id %% 60,
               CASE WHEN r.id %% 3 = 0 THEN 5 ELSE 0 END,
               b.sent_at + interval '1 hour' * (1 + r.id %% 330), 'bench', 'p-' || r.id, now()
           FROM campaigns_recipient r JOIN campaigns_batch b ON b.id = r.batch_id
           WHERE (r.id * 104729) %% 100 < CASE WHEN r.outcome = 'recipient' THEN 3 ELSE 2 END""",
        {"first_item": items[0].id},
    )
    sql("ANALYZE")
    return {"customers": customers, "batches": n_batches, "message_events": events, "purchases": purchases}, batch_ids


def timed(function, *args, **kwargs):
    started = time.perf_counter()
    value = function(*args, **kwargs)
    return value, round(time.perf_counter() - started, 3)


def page_time(client, url, runs=5):
    times, queries = [], 0
    for _ in range(runs):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = client.get(url)
            times.append(time.perf_counter() - started)
        assert response.status_code == 200, response.status_code
        queries = len(captured.captured_queries)
    return {"median_s": round(statistics.median(times), 4), "max_s": round(max(times), 4), "queries": queries}


def add_events_to(batch_id, n=1000):
    return sql(
        """INSERT INTO campaigns_messageevent (recipient_id, kind, source, event_id, occurred_at, is_bot, bot_reason,
               user_agent, detail, received_at)
           SELECT r.id, 'opened', 'provider', 'late-' || r.id, r.sent_at + interval '1 day', false, '', '', '{}', now()
           FROM campaigns_recipient r WHERE r.batch_id = %s AND r.outcome = 'recipient' ORDER BY r.id DESC LIMIT %s""",
        [batch_id, n],
    )


def refresh_parts(batch_id):
    """One batch's refresh in its parts: the funnel per day, the groups' sums, and within these the predicted
    against actual (Σ p, and the buyers of the eligible items: one query per promotion and group)."""
    from campaigns.models import Batch
    from campaigns.services import stats
    from promo_site.demo import measurement_window

    batch = Batch.objects.select_related("campaign").get(id=batch_id)
    start = stats.batch_send_time(batch)
    _, daily_s = timed(stats.batch_daily_rebuild, batch=batch)
    _, uplift_s = timed(stats.batch_uplift_rebuild, batch=batch)
    started = time.perf_counter()
    for group in ("treated", "holdout", "global_holdout"):
        rows = stats.group_rows(batch, group)
        stats.predicted_and_bought(rows, group == "treated", start, start + measurement_window())
    promises_s = round(time.perf_counter() - started, 3)
    return {"daily_s": daily_s, "groups_s": uplift_s, "of_which_predicted_against_actual_s": promises_s}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "out" / "dashboard.json")
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--batches", type=int, default=10)
    args = parser.parse_args()
    from django.contrib.auth import get_user_model

    from campaigns.models import BatchUplift
    from campaigns.services.attribution import conversions_attribute
    from campaigns.services.stats import stats_refresh
    from campaigns.services.uplift_stats import groups_pool

    reset_database()
    (rows, batch_ids), fill_s = timed(fill, args.messages, args.batches)
    print(json.dumps({"filled": rows, "seconds": fill_s}), flush=True)
    attributed, attribution_s = timed(conversions_attribute)
    result = {"machine": machine(), "rows": {**rows, "messages": args.messages}, "fill_s": fill_s}
    result["attribution"] = {
        "events": attributed.examined, "attributed": attributed.attributed, "by_rule": dict(attributed.by_rule),
        "seconds": attribution_s, "events_per_s": round(attributed.examined / attribution_s),
    }  # fmt: skip
    print(json.dumps(result["attribution"]), flush=True)
    sql("ANALYZE")
    _, full_s = timed(stats_refresh, batch_ids=batch_ids)
    result["refresh_all"] = {
        "batches": len(batch_ids),
        "seconds": full_s,
        "per_batch_s": round(full_s / len(batch_ids), 3),
    }
    add_events_to(batch_ids[-1])
    _, one_s = timed(stats_refresh, batch_ids=[batch_ids[-1]])
    result["refresh_one_batch"] = {"messages": args.messages // args.batches, "seconds": one_s}
    result["refresh_parts"] = refresh_parts(batch_ids[-1])
    # what the refresh counted: buyers of the promotion's eligible items per group, summed over the batches
    pooled = groups_pool(BatchUplift.objects.values_list("groups", flat=True))
    result["eligible_buyers"] = {group: int(sums["buyers"]) for group, sums in sorted(pooled.items())}
    keys = ("refresh_all", "refresh_one_batch", "refresh_parts", "eligible_buyers")
    print(json.dumps({k: result[k] for k in keys}), flush=True)
    client = Client()
    client.force_login(get_user_model().objects.get(username="bench"))  # axes wants a request to authenticate
    client.get("/")  # warm: templates, plotly finder, connection
    result["page"] = page_time(client, "/")
    result["page_filtered"] = page_time(client, "/?campaign=1&from=2000-01-01")
    result["csv"] = page_time(client, "/dashboard.csv")
    print(json.dumps({k: result[k] for k in ("page", "page_filtered", "csv")}), flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
