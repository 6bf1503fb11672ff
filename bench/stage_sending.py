"""Sending at scale: messages a second through anymail's real Postmark backend, with 1 and 2 worker processes.

    python bench/stage_sending.py --scale 0.01 --database-url postgres://postgres@127.0.0.1:5432/promo_bench_send \
        [--redis-url redis://127.0.0.1:6379/9] [--json OUT]
    python bench/stage_sending.py --scale 0.01 --database-url URL --profile   # one sender in this process, profiled

At scale 1 a batch has 1,000,000 recipients (1,000 at 0.001). The database is created and migrated when it does
not exist; its contactable customers with an e-mail address are the batch's recipients, topped up with
customers of this bench's own ("send-bench-N") when there are too few, so it runs on an empty database or on
bench/synthetic_shop.py's shop. For each worker count (1, then 2):

1. a batch is made ready to send with SQL, approved, and sent with the real `batch_send_start`, which queues
   SEND_PARALLEL senders on the `send` queue. By default (`--rendering on_demand`) it is what generation leaves
   now (campaigns/messages.py): no bodies, a promotion in the batch's message snapshot, and each recipient's code
   and 4 items with their wording, so every message is rendered by the sender (the campaign's default
   templates, its signed links, the text part) as production sends it. `--rendering stored` makes the batches
   generated before that: each recipient with a stored subject and an HTML body of about 2 KB;
2. that many real Celery worker processes (`celery worker -Q send -c 1`, each a host of its own as far as the
   send is concerned) send it through anymail's Postmark backend to the fake Postmark
   (promo_site/fake_postmark.py, in this process, keeping no bodies: `lean`), with SEND_RATE_PER_SECOND set far above
   what they reach, so the rate limiter is passed on every chunk but never waits;
3. the figure is recipients / (the batch's sent_at - its send_started_at), both written by the product; the
   fake counts what it took by our key: every recipient exactly once, none twice, and one "sent" audit row.

The reference is the fake Postmark's own ceiling, measured first in the same run: a client process posting
ready-made 500-message batches to it as fast as it answers. Rows: {"name", "value", "unit", "goal",
"reference", "ok"}; the goal is 1,000 messages a second. It prints the rows and writes them as JSON.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

GOAL = ">= 1000"  # messages a second, as bench/run.py writes goals
WORKER_COUNTS = (1, 2)
# The rate limit the workers are given (the limiter is asked for every chunk but never makes one wait), and the
# one this process starts the batch under: batch_send_start queues one sender per SEND_SENDER_RATE of it (at most
# SEND_PARALLEL), so a process left at the default 50 a second would queue a single sender for any worker count.
RATE = 1_000_000
RENDERING_WORDS = {"on_demand": "rendered by the sender", "stored": "bodies stored"}
# SQL for the HTML, inside a statement with parameters: every % is doubled.
BODY_SQL = """'<p>Hi Customer ' || c.id || ',</p>
<p>15%% off skin care: <strong>15%% off</strong> with code <strong>SKIN' || c.id || '</strong>, until 31 December.</p>
<table>' || (SELECT string_agg('
  <tr>
    <td><img src="https://shop.example.test/img/sku-' || (c.id * 7 + k) %% 100000 || '.jpg" alt="" width="80"></td>
    <td><a href="https://promo.example.test/r/' || md5(c.id || ':' || k) || md5(k || ':' || c.id)
        || '/">Item ' || (c.id * 7 + k) %% 100000 || ' &amp; friends</a><br>' || (k * 3 + 1) || '.90</td>
  </tr>', '') FROM generate_series(1, 4) k) || '
</table>
<p>Yours, the shop.</p>
<p><a href="https://promo.example.test/u/' || md5(c.id::text) || md5(c.id || 'u') || '/">Unsubscribe</a></p>'"""


def _django(database_url, redis_url):
    """Point this process at the bench's database and Redis, then set Django up, unless a caller (bench/run.py)
    did already. Returns the Redis and broker URLs this process uses, which the workers are given too."""
    from django.apps import apps

    if not apps.ready:
        os.environ["DATABASE_URL"] = database_url
        os.environ["REDIS_URL"] = redis_url
        os.environ["CELERY_BROKER_URL"] = redis_url
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "promo_site.settings")
        os.environ.setdefault("DEBUG", "1")  # a development benchmark: the settings run safe (need a key) without it
        import django

        _database_exists_or_create(database_url)
        django.setup()
    from django.conf import settings
    from django.db import connection

    if connection.settings_dict["NAME"] != urlsplit(database_url).path.lstrip("/"):
        raise RuntimeError(f"Django is already set up on {connection.settings_dict['NAME']}, not on {database_url}")
    if not settings.REDIS_URL or not settings.CELERY_BROKER_URL.startswith("redis"):
        raise RuntimeError("the sending bench needs Redis (the broker and the rate limiter): set REDIS_URL")
    return settings.REDIS_URL, settings.CELERY_BROKER_URL


def _database_exists_or_create(database_url):
    import psycopg

    url = urlsplit(database_url)
    name = url.path.lstrip("/")
    with psycopg.connect(url._replace(path="/postgres").geturl(), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def _sql(statement, params=()):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.rowcount


def _migrated():
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _customers(n):
    """Ids of n contactable customers with an address, adding the bench's own when the shop has fewer."""
    from shop.models import Customer

    have = Customer.objects.contactable().count()
    if have < n:
        _sql(
            """INSERT INTO shop_customer (external_id, email, name, attributes, demographics, marketing_consent,
                   consent_at, consent_source, suppressed, suppressed_reason, time_zone, is_stub, created_at,
                   updated_at)
               SELECT 'send-bench-' || g, 'send-bench-' || g || '@example.test', 'Customer ' || g, '{}', '{}', true,
                   now(), 'bench', false, '', 'UTC', false, now(), now()
               FROM generate_series(%s, %s) g
               ON CONFLICT (external_id) DO NOTHING""",
            [have + 1, n],
        )
    return Customer.objects.contactable().order_by("id").values_list("id", flat=True)[:n]


def _people():
    from django.contrib.auth import get_user_model

    from promo_site.roles import roles_sync

    roles = roles_sync()
    people = {}
    for name in ("send-bench-marketer", "send-bench-approver"):
        user, _ = get_user_model().objects.get_or_create(username=name, defaults={"is_staff": True})
        user.groups.add(roles[name.rsplit("-", 1)[1]])
        people[name.rsplit("-", 1)[1]] = user
    return people


ITEMS_PER_MESSAGE = 4
ITEM_POOL = 1_000  # the items the messages recommend: the shop's first ones, topped up with the bench's own
# One recipient's items, as generation stores them (campaigns/messages.py item_wording, beside the item's id and
# the recommender's figures); the pool is %s (an array of item ids), every % doubled.
ITEMS_SQL = """(SELECT jsonb_agg(jsonb_build_object(
        'item_id', i.id, 'probability', 0.05, 'because_item_id', NULL, 'kind', 'new',
        'title', coalesce(nullif(i.title, ''), i.external_id), 'price', coalesce(i.price::text, ''),
        'image_url', i.image_url, 'because', '', 'reason', 'Popular with customers like you') ORDER BY k)
    FROM generate_series(0, %s - 1) k
    JOIN shop_item i ON i.id = (%s::bigint[])[1 + (c.id * 7 + k) %% cardinality(%s::bigint[])])"""


def _items(n):
    """Ids of n items for the messages, adding the bench's own when the shop has fewer."""
    from shop.models import Item

    have = Item.objects.count()
    if have < n:
        _sql(
            """INSERT INTO shop_item (external_id, title, category_path, brand, price, cost, active, in_stock,
                   image_url, attributes, is_stub, created_at, updated_at)
               SELECT 'send-bench-item-' || g, 'Bench item ' || g || ' & friends', 'Bench', '', 3.90, 2.00, true,
                   true, 'https://shop.example.test/img/' || g || '.jpg', '{}', false, now(), now()
               FROM generate_series(%s, %s) g
               ON CONFLICT (external_id) DO NOTHING""",
            [have + 1, n],
        )
    return list(Item.objects.order_by("id").values_list("id", flat=True)[:n])


def _promotion(people):
    from datetime import timedelta
    from decimal import Decimal

    from django.utils import timezone

    from campaigns.models import Promotion

    promotion, _ = Promotion.objects.get_or_create(
        name="Send bench: 15% off skin care",
        defaults={"description": "15% off every skin care item.", "value": Decimal("15"),
                  "ends_at": timezone.now() + timedelta(days=3650)},
    )  # fmt: skip
    return promotion


def ready_batch(n, people, rendering="on_demand"):
    """An approved batch of n recipients, made with SQL as generation would leave it: rendered on demand (what
    generation does now) or with every body stored (batches generated before that)."""
    from campaigns.batch_settings import BatchSettings
    from campaigns.models import Audience, Batch, BatchEvent, Campaign
    from campaigns.rendering import promotion_fields

    customer_ids = list(_customers(n))
    audience, _ = Audience.objects.get_or_create(
        name="Send bench", defaults={"rules": {"match": "all", "rules": []}, "created_by": people["marketer"]}
    )
    campaign, _ = Campaign.objects.get_or_create(
        name="Send bench", defaults={"audience": audience, "created_by": people["marketer"], "holdout_percent": 0}
    )
    number = Batch.objects.filter(campaign=campaign).count() + 1
    batch = Batch.objects.create(
        campaign=campaign, number=number, status=Batch.Status.APPROVED, seed=number, created_by=people["marketer"],
        settings_snapshot=BatchSettings.of_campaign(campaign).to_json(), decided_by=people["approver"],
        rendering=rendering,
    )  # fmt: skip
    BatchEvent.objects.create(batch=batch, action=BatchEvent.Action.APPROVED, by=people["approver"])
    if rendering == Batch.Rendering.ON_DEMAND:
        promotion, items = _promotion(people), _items(ITEM_POOL)
        batch.message_snapshot = {"promotions": {str(promotion.id): promotion_fields(promotion)}}
        batch.save(update_fields=["message_snapshot"])
        rows = _sql(
            f"""INSERT INTO campaigns_recipient (batch_id, customer_id, outcome, reason, promotion_id, code, items,
                   alternatives, subject, body_html, render_error, send_status, attempts, provider_message_id,
                   send_error, delivery_status)
               SELECT %s, c.id, 'recipient', '', %s, 'SKIN' || c.id, {ITEMS_SQL}, '[]', '', '', '', '', 0, '', '',
                   ''
               FROM shop_customer c WHERE c.id = ANY(%s)""",
            [batch.id, promotion.id, ITEMS_PER_MESSAGE, items, items, customer_ids],
        )
        _sql("ANALYZE campaigns_recipient")
        return Batch.objects.get(pk=batch.pk), rows
    rows = _sql(
        f"""INSERT INTO campaigns_recipient (batch_id, customer_id, outcome, reason, code, items, alternatives,
               subject, body_html, render_error, send_status, attempts, provider_message_id, send_error,
               delivery_status)
           SELECT %s, c.id, 'recipient', '', 'SKIN' || c.id, '[]', '[]',
               'Customer ' || c.id || ', 15%% off skin care until Sunday', {BODY_SQL}, '', '', 0, '', '', ''
           FROM shop_customer c WHERE c.id = ANY(%s)""",
        [batch.id, customer_ids],
    )
    _sql("ANALYZE campaigns_recipient")
    return Batch.objects.get(pk=batch.pk), rows


# --- the fake Postmark's own ceiling -----------------------------------------------------

CEILING_CLIENT = r"""
import json, sys, time, requests
url, token, seconds, body = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.stdin.read()
session = requests.Session()
headers = {"X-Postmark-Server-Token": token, "Content-Type": "application/json", "Accept": "application/json"}
sent, start = 0, time.monotonic()
while time.monotonic() - start < seconds:
    answer = session.post(url + "email/batch", data=body, headers=headers, timeout=60)
    answer.raise_for_status()
    sent += len(answer.json())
print(json.dumps({"messages": sent, "seconds": time.monotonic() - start}))
"""


def fake_ceiling(fake, sample_html, seconds=5.0):
    """Messages a second the fake Postmark takes from one client posting ready-made 500-message batches."""
    messages = [
        {"From": "promotions@example.test", "To": f"ceiling-{i}@example.test", "Subject": f"Ceiling {i}",
         "HtmlBody": sample_html, "TextBody": sample_html, "Metadata": {"promo_message": str(-i)},
         "Headers": [{"Name": "X-Promo-Message", "Value": str(-i)}], "Tag": "ceiling", "MessageStream": "outbound"}
        for i in range(1, 501)
    ]  # fmt: skip
    client = subprocess.run(
        [sys.executable, "-c", CEILING_CLIENT, fake.url, fake.token, str(seconds)],
        input=json.dumps(messages), capture_output=True, text=True, check=True, timeout=seconds + 120,
    )  # fmt: skip
    result = json.loads(client.stdout)
    fake.reset()
    return result["messages"] / result["seconds"]


# --- workers -------------------------------------------------------------------------


def _worker_env(fake, redis_url, broker_url, database_url):
    return dict(
        os.environ,
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        CELERY_BROKER_URL=broker_url,
        DEBUG="1",
        EMAIL_BACKEND="anymail.backends.postmark.EmailBackend",
        ANYMAIL_POSTMARK_SERVER_TOKEN=fake.token,
        ANYMAIL_POSTMARK_API_URL=fake.url,
        # The limiter is asked for every chunk but never makes one wait: the figure is the sender's own.
        SEND_RATE_PER_SECOND=str(RATE),
        DB_CONN_MAX_AGE="60",
    )


def start_workers(count, env, log_dir):
    from promo_site.celery import app

    workers = []
    for index in range(count):
        name = f"send-bench-{index}@%h"
        log = open(log_dir / f"send-bench-worker-{index}.log", "w")
        command = [sys.executable, "-m", "celery", "-A", "promo_site", "worker", "-Q", "send", "-c", "1", "-n", name]
        process = subprocess.Popen(
            [*command, "--loglevel", "WARNING"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        log.close()
        workers.append(process)
    names = {f"send-bench-{index}@{os.uname().nodename}" for index in range(count)}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        answered = {name for reply in app.control.ping(timeout=1.0) or [] for name in reply}
        if names <= answered:
            return workers
        if any(process.poll() is not None for process in workers):
            break
    stop_workers(workers)
    raise RuntimeError(f"the bench's workers did not start: see {log_dir}/send-bench-worker-*.log")


def _cpu_by_process():
    """{pid: (process group, CPU seconds used so far, user + system)} of every process this user may read."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        found[int(stat.parent.name)] = (int(fields[2]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))
    return found


def cpu_seconds(workers):
    """CPU time used so far by the workers' processes, their pool children included (each worker is a process
    group of its own)."""
    groups = {process.pid for process in workers}
    return sum(cpu for group, cpu in _cpu_by_process().values() if group in groups)


def database_cpu_seconds():
    """{backend pid: CPU seconds} of the PostgreSQL backends connected to this database (the server's own
    processes: readable when the bench runs as root or as postgres, else empty). A backend that lived less
    than the bench's half-second sampling is not counted: the figure is a floor."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        pids = {row[0] for row in cursor.fetchall()}
    return {pid: cpu for pid, (_group, cpu) in _cpu_by_process().items() if pid in pids}


def stop_workers(workers):
    for process in workers:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in workers:
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


# --- one send ----------------------------------------------------------------------------


def send_with_workers(n, workers, *, fake, people, env, log_dir, timeout, rendering="on_demand"):
    """Send a new batch of n messages with `workers` worker processes; its figures."""
    from django.test import override_settings

    from campaigns.models import Batch, BatchEvent, Recipient
    from campaigns.services.delivery import senders_per_batch
    from campaigns.services.sending import batch_send_start
    from promo_site.celery import app
    from promo_site.models import OutboxTask

    batch, total = ready_batch(n, people, rendering)
    fake.reset()
    app.control.purge()
    processes = start_workers(workers, env, log_dir)
    try:
        cpu_before, database_before, started = cpu_seconds(processes), database_cpu_seconds(), time.monotonic()
        database_seen = dict(database_before)  # sampled as it goes: the workers' backends come and go
        with override_settings(SEND_RATE_PER_SECOND=RATE):
            batch_send_start(batch=batch, by=people["marketer"])
            wanted = senders_per_batch()
        senders = OutboxTask.objects.filter(task="campaigns.tasks.send_batch_messages", args__0=batch.id).count()
        if senders != wanted:
            raise RuntimeError(f"batch {batch.id}: {senders} sender(s) queued, not {wanted}")
        while Batch.objects.get(pk=batch.pk).status == Batch.Status.SENDING:
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"batch {batch.id} not sent after {timeout} s: {_states(batch)}")
            database_seen.update(database_cpu_seconds())
            time.sleep(0.5)
        cpu = cpu_seconds(processes) - cpu_before
        database_seen.update(database_cpu_seconds())
        database_cpu = sum(cpu - database_before.get(pid, 0.0) for pid, cpu in database_seen.items())
    finally:
        stop_workers(processes)
    batch.refresh_from_db()
    taken = Counter({int(key): n for key, n in fake.count_by_metadata("promo_message").items()})
    recipient_ids = set(Recipient.objects.filter(batch=batch).values_list("id", flat=True))
    seconds = (batch.sent_at - batch.send_started_at).total_seconds()
    return {
        "workers": workers,
        "senders": senders,
        "recipients": total,
        "status": batch.status,
        "seconds": round(seconds, 2),
        "per_second": total / seconds,
        "worker_cpu_ms_per_message": cpu * 1000 / total,
        "database_cpu_ms_per_message": database_cpu * 1000 / total,
        "load_average": os.getloadavg()[0],
        "provider_calls": len(fake.calls),
        "duplicates": sum(count - 1 for count in taken.values()),
        "missing": len(recipient_ids - set(taken)),
        "strangers": len(set(taken) - recipient_ids),
        "states": _states(batch),
        "sent_events": batch.events.filter(action=BatchEvent.Action.SENT).count(),
    }


def _states(batch):
    from campaigns.models import Recipient

    return dict(Counter(Recipient.objects.filter(batch=batch).values_list("send_status", flat=True)))


def _rows(results, ceiling):
    rows = [
        {"name": "sending: fake Postmark ceiling (one client, 500-message calls)", "value": round(ceiling),
         "unit": "messages/s", "goal": None, "reference": None, "ok": None},
    ]  # fmt: skip
    for result in results:
        exact = not (result["duplicates"] or result["missing"] or result["strangers"]) and result["sent_events"] == 1
        rows.append(
            {"name": f"sending: {result['recipients']:,} messages, {result['workers']} worker process(es), "
                     f"{RENDERING_WORDS[result.get('rendering', 'on_demand')]}",
             "value": round(result["per_second"]), "unit": "messages/s", "goal": GOAL, "reference": round(ceiling),
             "ok": result["per_second"] >= 1000})  # fmt: skip
        rows.append(
            {"name": f"sending: worker CPU per message ({result['workers']} worker(s))",
             "value": round(result["worker_cpu_ms_per_message"], 3), "unit": "ms", "goal": None, "reference": None,
             "ok": None})  # fmt: skip
        rows.append(
            {"name": f"sending: PostgreSQL CPU per message ({result['workers']} worker(s))",
             "value": round(result["database_cpu_ms_per_message"], 3), "unit": "ms", "goal": None,
             "reference": None, "ok": None})  # fmt: skip
        rows.append(
            {"name": f"sending: each recipient exactly once, batch finished once ({result['workers']} worker(s))",
             "value": result["duplicates"] + result["missing"] + result["strangers"], "unit": "messages wrong",
             "goal": "<= 0", "reference": None, "ok": exact})  # fmt: skip
    return rows


def measure(
    *,
    database_url: str,
    scale: float,
    redis_url: str | None = None,
    log_dir: Path | None = None,
    worker_counts: tuple = WORKER_COUNTS,
    rendering: str = "on_demand",
) -> list[dict]:
    """Messages a second with 1 and 2 worker processes, and the exactly-once check (the module's docstring)."""
    redis_url = redis_url or os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/9"
    redis_url, broker_url = _django(database_url, redis_url)
    _migrated()
    from campaigns.messages import recipient_message
    from campaigns.models import Recipient
    from promo_site.fake_postmark import FakePostmark

    n = max(100, round(1_000_000 * scale))
    log_dir = Path(log_dir or REPO / "bench" / "out")
    log_dir.mkdir(parents=True, exist_ok=True)
    people = _people()
    fake = FakePostmark(host="127.0.0.1", port=0, lean=True).start()
    try:
        sample = ready_batch(1, people, rendering)[0]
        ceiling = fake_ceiling(fake, recipient_message(Recipient.objects.filter(batch=sample).get())[1])
        env = _worker_env(fake, redis_url, broker_url, database_url)
        results = []
        for workers in worker_counts:
            result = send_with_workers(n, workers, fake=fake, people=people, env=env, log_dir=log_dir,
                                       timeout=max(600, n / 50), rendering=rendering)  # fmt: skip
            result["rendering"] = rendering
            print(json.dumps(result), flush=True)
            results.append(result)
    finally:
        fake.stop()
    return _rows(results, ceiling)


def profile(*, database_url, scale, redis_url=None, rendering="on_demand"):
    """One sender slice in this process on a batch of the scale's size, under cProfile: where a chunk's time goes."""
    import cProfile
    import pstats

    redis_url = redis_url or os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/9"
    os.environ["SEND_RATE_PER_SECOND"] = str(RATE)
    _django(database_url, redis_url)
    _migrated()
    from django.conf import settings

    from campaigns.models import Batch
    from campaigns.services.delivery import batch_send_slice
    from campaigns.services.sending import batch_send_start
    from promo_site.fake_postmark import FakePostmark

    n = max(100, round(1_000_000 * scale))
    fake = FakePostmark(host="127.0.0.1", port=0, lean=True).start()
    settings.EMAIL_BACKEND = "anymail.backends.postmark.EmailBackend"
    settings.ANYMAIL = {"POSTMARK_SERVER_TOKEN": fake.token, "POSTMARK_API_URL": fake.url}
    people = _people()
    from promo_site.models import OutboxTask

    def send_here(profiler=None):
        batch, total = ready_batch(n, people, rendering)
        batch = batch_send_start(batch=batch, by=people["marketer"])
        OutboxTask.objects.filter(dispatched_at__isnull=True).delete()  # this process is the sender, not a worker
        started = time.monotonic()
        if profiler:
            profiler.enable()
        while batch_send_slice(batch_id=batch.id, run=batch.send_run) is not None:
            pass
        if profiler:
            profiler.disable()
        seconds = time.monotonic() - started
        status = Batch.objects.get(pk=batch.pk).status
        print(f"{total:,} messages in {seconds:.1f} s: {total / seconds:.0f} messages/s in this process "
              f"({'profiled' if profiler else 'not profiled'}); {status}")  # fmt: skip

    send_here()
    profiler = cProfile.Profile()
    send_here(profiler)
    fake.stop()
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(45)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=0.01, help="1 = 1,000,000 recipients (default 0.01)")
    parser.add_argument("--database-url", required=True, help="created and migrated when it does not exist")
    parser.add_argument("--redis-url", default=None, help="broker and rate limiter (default: REDIS_URL, else db 9)")
    parser.add_argument("--json", default=None, help="where to write the rows")
    parser.add_argument("--workers", default="1,2", help="worker process counts to measure (default 1,2)")
    parser.add_argument("--profile", action="store_true", help="profile one sender in this process instead")
    parser.add_argument(
        "--rendering", choices=("on_demand", "stored"), default="on_demand",
        help="on_demand (default): the sender renders every message, as batches generated now are sent; "
        "stored: each recipient's body stored with the batch, as batches generated before that",
    )  # fmt: skip
    args = parser.parse_args()
    if args.scale <= 0:
        parser.error(f"--scale must be positive, not {args.scale}")
    if args.profile:
        return profile(database_url=args.database_url, scale=args.scale, redis_url=args.redis_url,
                       rendering=args.rendering)  # fmt: skip
    try:
        counts = tuple(int(part) for part in args.workers.split(","))
    except ValueError:
        parser.error(f"--workers is a comma-separated list of worker counts, such as 1,2; not {args.workers!r}")
    if not counts or min(counts) < 1:
        parser.error(f"--workers: each count is at least 1, not {args.workers!r}")
    rows = measure(database_url=args.database_url, scale=args.scale, redis_url=args.redis_url, worker_counts=counts,
                   rendering=args.rendering)  # fmt: skip
    for row in rows:
        print(json.dumps(row))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
