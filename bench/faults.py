"""Faults benchmark: kill -9 of send workers, PostgreSQL and Redis restarts, during a send and during ingestion.

    python bench/faults.py --json bench/out/faults.json            # 20,000 recipients, 24 kills, 8 restarts
    python bench/faults.py --quick --json /tmp/faults.json         # the smoke version CI runs (a few minutes)

Everything runs against servers of its own (bench/private_services.py): a PostgreSQL cluster made with
initdb on a free port, a Redis with an append-only file, the fake Postmark in this process, three Celery
workers on the `send` and `default` queues, Celery beat and gunicorn. The machine's shared PostgreSQL and
Redis are never touched.

1. Send. A batch of --recipients messages is generated, approved and sent through anymail's real
   Postmark backend to the fake Postmark, which answers 429, 500 and timeouts at random. While it sends,
   the chaos loop kills a random worker's whole process group with SIGKILL (--kills times; a new worker
   replaces it) and restarts PostgreSQL (alternately `pg_ctl -m fast` and `-m immediate`, a crash) and
   Redis (kill -9, then the same append-only file). The last actions are the restarts, and no worker is
   replaced after them: the send must finish on workers that reconnected by themselves. A killed worker's
   claims wait for the sweeper; rather than wait SEND_CLAIM_STALE_MINUTES, the bench lets time pass the
   way tests/campaigns/test_sending.py does: when no message has changed state for IDLE_S seconds, the
   batch's claim and due times are dated back an hour and the sweeper runs (`sweeps_after_time_passed`).
2. Ingestion. --clients clients post --events events to the events API through gunicorn in batches of
   1,000, each retrying a batch after a 503 (Retry-After), a 5xx or a broken connection, while PostgreSQL
   and Redis are restarted. Every event id is posted until it is answered 200.

Writes {"kills", "duplicates", "lost", "stuck", "events_posted", "events_stored", "restarts", ...} with
the durations. duplicates: copies the provider took beyond the first. lost: messages whose state here
disagrees with the provider (sent here, absent there; or there, and failed or queued here). stuck:
messages neither sent nor failed with a reason when the run ends.
"""

import argparse
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.private_services import PrivatePostgres, PrivateRedis, free_port, missing, wait_port  # noqa: E402

DATABASE = "promo_faults"
IDLE_S = 15.0  # no message changed state for this long: the batch's sender or a claimant was killed
WORKERS = 3
FULL = {"recipients": 20_000, "kills": 24, "send_restarts": 4, "events": 200_000, "ingest_restarts": 4, "rate": 150}
QUICK = {"recipients": 600, "kills": 3, "send_restarts": 2, "events": 12_000, "ingest_restarts": 2, "rate": 20}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", required=True, help="where to write the figures")
    parser.add_argument("--quick", action="store_true", help="the small version (CI's slow test)")
    for name in FULL:
        help_text = f"default {FULL[name]:,} ({QUICK[name]:,} quick)"
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, help=help_text)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds the send may take to settle")
    parser.add_argument("--keep", help="keep logs in this directory (default: a temporary one, removed)")
    args = parser.parse_args()
    params = {name: getattr(args, name) or (QUICK if args.quick else FULL)[name] for name in FULL}
    lacks = missing()
    if lacks:
        sys.exit(f"bench/faults.py needs {', '.join(lacks)}")
    # A SIGTERM (a test's timeout, a Ctrl-C from another shell) unwinds through the finally blocks: the
    # workers, beat, gunicorn and the private servers stop with this process instead of outliving it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("bench/faults.py: terminated"))
    workdir = Path(args.keep or tempfile.mkdtemp(prefix="promo-faults-"))
    workdir.mkdir(parents=True, exist_ok=True)
    with PrivatePostgres(workdir) as pg, PrivateRedis(workdir) as redis:
        result = Run(pg, redis, workdir, params, args).run()
    print(json.dumps(result, indent=2))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


def _configure_django(pg, redis, workdir, params, fake):
    os.environ.update(
        DJANGO_SETTINGS_MODULE="promo_site.settings",
        DEBUG="1",
        DATABASE_URL=pg.url(DATABASE),
        REDIS_URL=redis.url(0),
        CELERY_BROKER_URL=redis.url(1),
        MEDIA_ROOT=str(workdir / "media"),
        API_THROTTLE_RATE="100000000/min",
        # anymail's real Postmark backend, to the fake Postmark (the sweeper here looks messages up there too)
        EMAIL_BACKEND="anymail.backends.postmark.EmailBackend",
        ANYMAIL_POSTMARK_SERVER_TOKEN=fake.token,
        ANYMAIL_POSTMARK_API_URL=fake.url,
        # Sending as the tests do it: chunks of a few seconds' worth, quick retries, short slices; the rate
        # is kept low enough that the kills and restarts land in the middle of the send.
        SEND_RATE_PER_SECOND=str(params["rate"]),
        SEND_CHUNK_SIZE=str(max(10, params["rate"] // 3)),
        SEND_RETRY_BASE_SECONDS="0.2",
        SEND_SLICE_SECONDS="10",
        SEND_CLAIM_STALE_MINUTES="4.5",
    )
    os.environ.pop("PYTEST_VERSION", None)  # run from a test: these are this run's servers, not the tests'
    import logging

    import django

    django.setup()
    logging.getLogger("promo_site.fake_postmark").setLevel(logging.WARNING)  # a line per call otherwise


class Run:
    def __init__(self, pg, redis, workdir, params, args):
        self.pg, self.redis, self.workdir, self.params, self.args = pg, redis, workdir, params, args
        self.rng = random.Random(args.seed)
        self.workers, self.started = [], 0
        self.kills = 0
        self.kills_while_sending = 0  # kills of the worker that was running the batch's sender
        self.restarts = Counter()
        self.log = open(workdir / "faults.log", "a")

    def say(self, text):
        line = f"{time.strftime('%H:%M:%S')} {text}"
        print(line, flush=True)
        self.log.write(line + "\n")
        self.log.flush()

    def run(self):
        from promo_site.fake_postmark import FakePostmark  # stdlib only: before Django's settings, which name it

        self.pg.create_database(DATABASE)
        self.fake = FakePostmark(host="127.0.0.1", port=0)
        self.fake.start()
        _configure_django(self.pg, self.redis, self.workdir, self.params, self.fake)
        from django.core.management import call_command

        started = time.monotonic()
        call_command("migrate", verbosity=0)
        self.env = self._process_env()
        try:
            send = SendScenario(self).run()
            ingest = IngestScenario(self).run()
        finally:
            self._stop_all()
            self.fake.stop()
        return {
            "kills": self.kills,
            "kills_of_the_sender": self.kills_while_sending,
            "duplicates": send["duplicates"],
            "lost": send["lost"],
            "stuck": send["stuck"],
            "events_posted": ingest["events_posted"],
            "events_stored": ingest["events_stored"],
            "restarts": dict(self.restarts),
            "send": send,
            "ingest": ingest,
            "params": self.params,
            "duration_s": round(time.monotonic() - started, 1),
            "machine": machine(),
        }

    # --- processes ---------------------------------------------------------------

    def _process_env(self):
        from django.conf import settings

        return dict(
            os.environ,
            DB_CONN_MAX_AGE="60",  # the production default: kept connections, checked before reuse
            SECRET_KEY=settings.SECRET_KEY,
        )

    def _spawn(self, name, command):
        log = open(self.workdir / f"{name}.log", "a")
        process = subprocess.Popen(
            [sys.executable, *command], cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: a kill takes the pool's children too
        )  # fmt: skip
        log.close()
        return process

    def start_workers(self):
        for _ in range(WORKERS):
            self._start_worker()
        self.beat = self._spawn("beat", ["-m", "celery", "-A", "promo_site", "beat", "-s", str(self.workdir / "beat")])

    def _start_worker(self):
        self.started += 1
        label = f"faults-{self.started}"
        command = ["-m", "celery", "-A", "promo_site", "worker", "-Q", "send,default", "-c", "1", "-n", f"{label}@%h"]
        process = self._spawn(f"worker-{self.started}", [*command, "--loglevel", "INFO"])
        process.label = label
        self.workers.append(process)
        return process

    def kill_worker(self):
        """kill -9 the worker running the batch's sender when one is (else any): its claim is cut mid-way."""
        alive = [w for w in self.workers if w.poll() is None]
        sending = [w for w in alive if w.label in self._workers_sending()]
        victim = self.rng.choice(sending or alive)
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait(timeout=30)
        self.workers.remove(victim)
        self.kills += 1
        self.kills_while_sending += bool(sending)
        self._start_worker()
        what = "the sender's worker" if sending else "a worker (none was sending)"
        self.say(f"kill -9 {victim.label}, {what} (kill {self.kills}); a new worker replaces it")

    def _workers_sending(self):
        from promo_site.celery import app

        try:
            active = app.control.inspect(timeout=1.0).active() or {}
        except Exception:  # the broker restarting: no answer, any worker will do
            return set()
        sender = "campaigns.tasks.send_batch_messages"
        return {name.split("@")[0] for name, tasks in active.items() if any(t["name"] == sender for t in tasks)}

    def restart(self, which):
        from django.db import connection

        if which == "postgres":
            mode = "immediate" if self.restarts["postgres"] % 2 else "fast"
            self.pg.restart(mode=mode)
            self.say(f"PostgreSQL restarted (-m {mode})")
        else:
            self.redis.restart()
            self.say("Redis killed (-9) and restarted on its append-only file")
        self.restarts[which] += 1
        connection.close()  # this process's own connection died with the server: the bench's, not the app's

    def start_web(self):
        self.web_port = free_port()
        command = ["-m", "gunicorn", "promo_site.wsgi", "-w", "2", "-b", f"127.0.0.1:{self.web_port}"]
        command += ["--timeout", "120"]
        self.web = self._spawn("gunicorn", command)
        wait_port(self.web_port, timeout=60)
        return f"http://127.0.0.1:{self.web_port}"

    def _stop_all(self):
        for process in [*self.workers, getattr(self, "beat", None), getattr(self, "web", None)]:
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in [*self.workers, getattr(self, "beat", None), getattr(self, "web", None)]:
            if process is None:
                continue
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


# --- 1. the send ------------------------------------------------------------------------


class SendScenario:
    def __init__(self, run):
        self.run_ = run
        self.n = run.params["recipients"]
        self.sweeps = 0  # times the bench let time pass for the sweeper

    def run(self):
        from campaigns.models import Batch, Recipient
        from campaigns.services.sending import batch_send_start

        say = self.run_.say
        t0 = time.monotonic()
        batch, marketer = self._approved_batch()
        total = batch.recipients.filter(outcome=Recipient.Outcome.RECIPIENT).count()
        setup_s = time.monotonic() - t0
        say(f"batch {batch.id}: {total:,} recipients, generated and approved in {setup_s:.0f} s; sending")
        self.run_.start_workers()
        self.run_.fake.configure(p_429=0.05, p_500=0.05, p_timeout=0.03, timeout_seconds=1.0, seed=self.run_.args.seed)
        t0 = time.monotonic()
        batch_send_start(batch=batch, by=marketer)
        self._chaos(batch, total)
        after_outages = [w.pid for w in self.run_.workers]
        self._settle(batch)
        send_s = time.monotonic() - t0
        result = self._check(batch, total)
        result.update(
            recipients=total,
            setup_s=round(setup_s, 1),
            send_s=round(send_s, 1),
            batch_status=Batch.objects.get(pk=batch.pk).status,
            sweeps_after_time_passed=self.sweeps,
            # the workers alive after the last restart finished the send without being restarted
            workers_reconnected=sum(1 for w in self.run_.workers if w.pid in after_outages and w.poll() is None),
            provider_calls=dict(Counter(str(call["outcome"]) for call in self.run_.fake.calls)),
        )
        say(f"send: {json.dumps(result)}")
        return result

    def _approved_batch(self):
        from campaigns.models import Batch
        from campaigns.services.batches import batch_approve, batch_request
        from campaigns.services.generation import batch_generate

        marketer, approver = build_shop(self.n)
        batch_id = batch_request(campaign=_campaign(marketer), by=marketer)
        batch_generate(batch_id=batch_id)  # here, not on a worker: the chaos is for the send
        return batch_approve(batch=Batch.objects.get(pk=batch_id), by=approver), marketer

    def _chaos(self, batch, total):
        """Kills first, spread over the send by progress; the restarts last, with no worker replaced after them."""
        run = self.run_
        actions = ["kill"] * run.params["kills"]
        restarts = ["postgres", "redis"] * (run.params["send_restarts"] // 2)
        if run.params["send_restarts"] % 2:
            restarts.append("postgres")
        actions += restarts
        for index, action in enumerate(actions):
            goal = total * (index + 1) // (len(actions) + 2)
            deadline = time.monotonic() + 300
            while _settled(batch) < goal and time.monotonic() < deadline:
                self._unless_moving(batch)
                time.sleep(0.2)
            time.sleep(0.5 + run.rng.random())  # somewhere inside a chunk's work, not at its edge
            if action == "kill":
                run.kill_worker()
            else:
                run.restart(action)

    def _settle(self, batch):
        """Wait for the batch to finish, letting time pass whenever a killed sender leaves it still."""
        from campaigns.models import Batch

        deadline = time.monotonic() + self.run_.args.timeout
        while time.monotonic() < deadline:
            if Batch.objects.get(pk=batch.pk).status == Batch.Status.SENT:
                return
            self._unless_moving(batch)
            if int(time.monotonic()) % 10 == 0:
                self.run_.say(f"settling: {dict(_counts(batch))}")
            time.sleep(1.0)

    def _unless_moving(self, batch):
        """When no message has changed state for IDLE_S seconds, its sender or a claimant was killed: let
        SEND_CLAIM_STALE_MINUTES pass (the batch's claims and due times dated back an hour) and run the sweeper,
        which settles the claims at the provider and restarts the sender. A live sender moves every second."""
        from campaigns.services.delivery import messages_sweep

        state = _counts(batch)
        now = time.monotonic()
        if state != getattr(self, "_last_state", None):
            self._last_state, self._still_since = state, now
            return
        if now - self._still_since < IDLE_S:
            return
        aged = _time_passes(batch)
        settled = messages_sweep()
        self.sweeps += 1
        self.run_.say(f"nothing moved for {IDLE_S:.0f} s: time passes ({aged} rows dated back), {settled} settled")
        self._still_since = time.monotonic()

    def _check(self, batch, total):
        from campaigns.models import Recipient

        SendStatus = Recipient.SendStatus
        taken = Counter(int(record["Metadata"]["promo_message"]) for record in self.run_.fake.outbox)
        rows = batch.recipients.filter(outcome=Recipient.Outcome.RECIPIENT)
        state = dict(rows.values_list("id", "send_status"))
        reasons = Counter(rows.filter(send_status=SendStatus.FAILED).values_list("send_error", flat=True))
        sent_here = {i for i, s in state.items() if s == SendStatus.SENT}
        lost = len(sent_here - set(taken)) + sum(1 for i in taken if state.get(i) != SendStatus.SENT)
        return {
            "duplicates": sum(count - 1 for count in taken.values()),
            "lost": lost,
            "stuck": sum(1 for s in state.values() if s in (SendStatus.QUEUED, SendStatus.CLAIMED))
            + reasons.get("", 0),
            "sent": len(sent_here),
            "failed": sum(reasons.values()),
            "failed_reasons": {reason[:80]: n for reason, n in reasons.most_common(5)},
        }


def _settled(batch):
    from campaigns.models import Recipient

    return batch.recipients.filter(send_status__in=[Recipient.SendStatus.SENT, Recipient.SendStatus.FAILED]).count()


def _counts(batch):
    return Counter(batch.recipients.exclude(send_status="").values_list("send_status", flat=True))


def _time_passes(batch):
    """An hour passes for the batch's messages: what a sweeper after SEND_CLAIM_STALE_MINUTES would see."""
    from django.db.models import F

    from campaigns.models import Recipient

    queued = batch.recipients.filter(send_status=Recipient.SendStatus.QUEUED)
    due = queued.update(send_after=F("send_after") - timedelta(hours=1))
    claimed = batch.recipients.exclude(claimed_at=None).update(claimed_at=F("claimed_at") - timedelta(hours=1))
    return due + claimed


def build_shop(n_customers):
    """n customers (all contactable) who bought a few of 40 items; a model trained on them; the cast."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from promo_site.roles import roles_sync
    from recommender.models import ModelVersion
    from recommender.services import modelversion_activate, modelversion_train
    from shop.models import Customer, Event, Item

    roles = roles_sync()
    User = get_user_model()
    people = {}
    for name in ("marketer", "approver", "admin"):
        user = User.objects.create_user(name, f"{name}@example.test", "faults", is_staff=True)
        if name == "admin":
            user.is_superuser = True
            user.save()
        else:
            user.groups.add(roles[name])
        people[name] = user
    rng = random.Random(0)
    now = timezone.now()
    items = Item.objects.bulk_create(
        Item(external_id=f"sku-{i}", title=f"Item {i}", category_path="Beauty > Skin care", brand="Acme",
             price="19.90", cost="8.00") for i in range(40)
    )  # fmt: skip
    customers = Customer.objects.bulk_create(
        Customer(external_id=f"c{c}", email=f"c{c}@example.test", name=f"Customer {c}", marketing_consent=True,
                 consent_at=now, consent_source="faults bench") for c in range(n_customers)
    )  # fmt: skip
    events = [
        Event(customer=customer, item=items[(first + step) % 40], type="purchase", value="19.90",
              occurred_at=now - timedelta(days=30 - step * 5, minutes=c % 600), source="seed",
              client_event_id=f"{c}-{step}")
        for c, customer in enumerate(customers)
        for first in [rng.randrange(40)]
        for step in range(4)
    ]  # fmt: skip
    Event.objects.bulk_create(events, batch_size=5000)
    version = modelversion_train(version_id=ModelVersion.objects.create(algorithm="transitions").id)
    modelversion_activate(version=version, by=people["admin"])
    return people["marketer"], people["approver"]


def _campaign(marketer):
    from django.utils import timezone

    from campaigns.models import Audience, Campaign, Promotion

    audience = Audience.objects.create(name="Everyone", rules={"match": "all", "rules": []}, created_by=marketer)
    campaign = Campaign.objects.create(name="Faults", audience=audience, created_by=marketer, holdout_percent=0)
    promotion = Promotion.objects.create(
        name="15% off skin care", kind=Promotion.Kind.PERCENT_OFF, value=15, categories=["Beauty > Skin care"],
        ends_at=timezone.now() + timedelta(days=14), code_mode=Promotion.CodeMode.SHARED, shared_code="SKIN15",
    )  # fmt: skip
    campaign.promotions.add(promotion)
    return campaign


# --- 2. ingestion -----------------------------------------------------------------------


class IngestScenario:
    BATCH = 1000

    def __init__(self, run):
        self.run_ = run
        self.answers = Counter()
        self.acknowledged = 0
        self.lock = threading.Lock()

    def run(self):
        import requests
        from rest_framework.authtoken.models import Token

        from promo_site.roles import roles_sync
        from shop.models import Event

        run = self.run_
        token = Token.objects.create(user=_integration_user(roles_sync())).key
        base = run.start_web()
        self.session_headers = {"Authorization": f"Token {token}"}
        n_batches = run.params["events"] // self.BATCH
        customers = run.params["recipients"]
        queue = list(range(n_batches))
        t0 = time.monotonic()
        threads = [
            threading.Thread(target=self._client, args=(base, queue, customers, requests), daemon=True)
            for _ in range(run.args.clients)
        ]
        for thread in threads:
            thread.start()
        restarts = ["postgres", "redis"] * (run.params["ingest_restarts"] // 2)
        for index, which in enumerate(restarts):
            goal = n_batches * (index + 1) // (len(restarts) + 1)
            while self.acknowledged < goal and any(t.is_alive() for t in threads):
                time.sleep(0.1)
            run.restart(which)
        for thread in threads:
            thread.join()
        ingest_s = time.monotonic() - t0
        # the web reconnected by itself: a request now, with every server up, is answered at once
        probe = requests.get(f"{base}/api/v1/events/?page_size=1", headers=self.session_headers, timeout=30)
        stored = Event.objects.filter(source="faults")
        result = {
            "events_posted": n_batches * self.BATCH,
            "events_acknowledged": self.acknowledged * self.BATCH,
            "events_stored": stored.count(),
            "distinct_event_ids": stored.values("client_event_id").distinct().count(),
            "answers": dict(sorted((str(k), v) for k, v in self.answers.items())),
            "ingest_s": round(ingest_s, 1),
            "web_reconnected": probe.status_code == 200,
        }
        run.say(f"ingestion: {json.dumps(result)}")
        return result

    def _client(self, base, queue, customers, requests):
        session = requests.Session()
        session.headers.update(self.session_headers)
        while True:
            with self.lock:
                if not queue:
                    return
                number = queue.pop()
            events = [
                {"event_id": f"{number}-{i}", "customer": f"c{(number * 7 + i) % customers}", "item": f"sku-{i % 40}",
                 "type": "view", "occurred_at": "2026-01-15T10:00:00Z"}
                for i in range(self.BATCH)
            ]  # fmt: skip
            self._post_until_accepted(session, f"{base}/api/v1/events/", {"source": "faults", "events": events})
            with self.lock:
                self.acknowledged += 1

    def _post_until_accepted(self, session, url, body):
        while True:
            try:
                response = session.post(url, json=body, timeout=120)
            except Exception as error:  # a connection the server dropped: the batch may or may not be stored
                with self.lock:
                    self.answers[type(error).__name__] += 1
                time.sleep(1.0)
                continue
            with self.lock:
                self.answers[response.status_code] += 1
            if response.status_code == 200:
                return
            time.sleep(float(response.headers.get("Retry-After", 1.0)))


def _integration_user(roles):
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user("integration", "integration@example.test", None)
    user.groups.add(roles["integration"])
    return user


def machine():
    cpu = "unknown"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "system": platform.platform()}


if __name__ == "__main__":
    main()
