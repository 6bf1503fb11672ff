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
   claims wait for the sweeper; rather than wait for its cut-off (claims_settle_after(), 150 s by default)
   and beat's minute, the bench lets time pass the way tests/campaigns/test_sending.py does: when no
   message has changed state for 15 s (IDLE_S), the batch's claim and due times are dated back an hour and
   the sweeper runs (`sweeps_after_time_passed`).
2. Ingestion. --clients clients post --events events to the events API through gunicorn in batches of
   1,000, each retrying a batch after a 503 (Retry-After), a 5xx or a broken connection, while PostgreSQL
   and Redis are restarted. Every event id is posted until it is answered 200.

The scenarios are in bench/fault_scenarios.py. It writes {"kills", "duplicates", "lost", "stuck",
"events_posted", "events_stored", "restarts", ...} with the durations. duplicates: copies the provider
took beyond the first. lost: messages whose state here disagrees with the provider (sent here, absent
there; or there, and failed or queued here). stuck: messages neither sent nor failed with a reason when
the run ends.
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
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.fault_scenarios import IngestScenario, SendScenario  # noqa: E402
from bench.private_services import PrivatePostgres, PrivateRedis, free_port, missing, wait_port  # noqa: E402

DATABASE = "promo_faults"
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


def machine():
    cpu = "unknown"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "system": platform.platform()}


if __name__ == "__main__":
    main()
