"""Scale: generating a batch for the whole synthetic shop, with 1 and then 2 worker processes.

    python bench/stage_generation.py --scale 0.01 --database-url postgres://postgres@127.0.0.1:5432/bench_gen \
        [--build] [--algorithm deep] [--workers 1,2] [--json OUT] [--profile OUT.prof]

On a shop built by bench/synthetic_shop.py (``--build`` builds it first, dropping that database), it trains and
activates a model version once (kept, with its artifact under MEDIA_ROOT, for the next run), creates a campaign
of three candidate promotions for everyone, then for each worker count starts that many real
``celery worker`` processes (``-Q default --concurrency 1``), requests a batch and waits for it to be
generated. A batch is planned as chunks of GENERATION_CHUNK_CUSTOMERS customers that any worker takes
(campaigns/services/generation_chunks.py). Figures:

- customers a second, end to end (audience query, eligibility, response and value model, promotion choice,
  items, codes, recipient rows, the render check): the audience over the time from the batch's claim to
  its generated_at, both from the database;
- peak memory: the largest peak resident set (VmHWM) of any worker's pool process;
- every customer exactly once: the batch's rows against the audience, and no customer twice.

At scale 1 a version's own training would take about an hour before generation starts: ``--train-customers N``
(or BENCH_GENERATION_TRAIN_CUSTOMERS, under bench/run.py) fits the deep model on N customers' orders over every
item instead, which serves at the same cost (_model_sampled).

With --profile, one more batch is then generated in the bench's own process under cProfile (the whole batch,
every chunk, no worker) and the profile written there; its top functions are printed.

Workers reach Redis at CELERY_BROKER_URL (default redis://127.0.0.1:6379/9, purged first). Prints the rows and,
with --json, writes them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

GOAL_PER_SECOND = 1000  # customers a second (issue 15), at any worker count
GOAL_PEAK_MIB = 2048  # per worker process: flat memory, whatever the shop's size
BROKER = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/9")  # not the tests' 15 nor the stack's 1


def _django(database_url, media_root):
    """Point this process at the bench's database, broker and media folder, then set Django up; under
    bench/run.py Django is set up already (on the same database and broker): only the media folder, which the
    workers are given too, changes then."""
    from django.apps import apps

    os.environ["MEDIA_ROOT"] = str(media_root)
    if apps.ready:
        from django.conf import settings

        settings.MEDIA_ROOT = str(media_root)
        return
    os.environ.setdefault("DEBUG", "1")
    os.environ["DATABASE_URL"] = database_url
    os.environ["CELERY_BROKER_URL"] = os.environ["REDIS_URL"] = BROKER
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "promo_site.settings")
    django.setup()


def _model(algorithm, by, epochs=1, train_customers=None):
    """The active version of `algorithm`, trained here once (`epochs` for the deep model: what is measured is
    serving, whose cost does not depend on how long it trained) and kept for later runs. With
    `train_customers`, the deep model is fitted on that many customers' orders only (_model_sampled)."""
    from django.conf import settings

    from recommender.models import ModelVersion
    from recommender.services import modelversion_activate, modelversion_train

    version = ModelVersion.objects.active().first()
    if version and version.algorithm == algorithm and (Path(settings.MEDIA_ROOT) / version.artifact).exists():
        return version, 0.0
    started = time.perf_counter()
    if train_customers and algorithm == "deep":
        return _model_sampled(by, train_customers, epochs), time.perf_counter() - started
    parameters = {"max_epochs": epochs} if algorithm == "deep" else {}
    version = modelversion_train(version_id=ModelVersion.objects.create(algorithm=algorithm, parameters=parameters).id)
    if version.status != ModelVersion.Status.READY:
        raise RuntimeError(f"training {algorithm} failed: {version.error}")
    return modelversion_activate(version=version, by=by), time.perf_counter() - started


def _model_sampled(by, customers, epochs):
    """A deep version fitted on the orders of `customers` customers spread evenly over the ids, over every item
    ever bought, with the response model trained beside it as a version's is; activated.

    For scale 1, where a version's own training (recommender/services.py: the next-basket validation's fit at V,
    then the fit on every order; about an hour there by the training stage's figures) would outlast the
    generation it serves. Serving costs what the model's shape costs (the catalogue, the embedding size, each
    customer's own orders), not what it was fitted on; the response model's rows are bounded in any case
    (recommender/ml/response/training.py). The version's metrics say how it was fitted."""
    import numpy as np
    from django.conf import settings
    from django.utils import timezone

    from recommender.interactions import purchase_orders_load
    from recommender.ml.registry import make_model
    from recommender.models import ModelVersion
    from recommender.response import response_model_train
    from recommender.services import MODE_NEXT_BASKET, artifact_dir, modelversion_activate

    until = timezone.now()
    data = purchase_orders_load(until=until)
    n_all = len(data.histories)
    picked = np.unique(np.linspace(0, n_all - 1, min(customers, n_all)).round().astype(np.int64))
    parameters = {"basket_epochs": epochs}
    version = ModelVersion.objects.create(algorithm="deep", parameters=parameters, reason="bench",
                                          status=ModelVersion.Status.TRAINING)  # fmt: skip
    model = make_model("deep", **parameters)
    model.fit(
        data.histories.take(picked),
        timestamps=data.timestamps.take(picked),
        orders=data.orders.take(picked),
        n_items=len(data.item_ids),
    )
    folder = artifact_dir(version)
    model.save(folder)
    np.save(folder / "item_ids.npy", data.item_ids)
    item_count, events = len(data.item_ids), data.n_events
    del data, model
    metrics = {
        "mode": MODE_NEXT_BASKET,
        "validation": {},
        "bench": f"fitted on the orders of {len(picked):,} of {n_all:,} customers (bench/stage_generation.py)",
        "response": response_model_train(folder=folder, until=until),
    }
    ModelVersion.objects.filter(id=version.id).update(
        status=ModelVersion.Status.READY,
        metrics=metrics,
        artifact=str(folder.relative_to(settings.MEDIA_ROOT)),
        n_customers=len(picked),
        n_items=item_count,
        n_events=events,
        data_until=until,
    )
    version.refresh_from_db()
    return modelversion_activate(version=version, by=by)


def _marketer():
    """The bench's user, who may do everything (permissions are not what is measured)."""
    from django.contrib.auth import get_user_model

    user, _created = get_user_model().objects.get_or_create(username="bench-marketer")
    user.is_staff = user.is_superuser = True
    user.save()
    return user


def _campaign(by):
    """Everyone, three candidate promotions (two departments and the whole shop), a 10% holdout."""
    from datetime import timedelta

    from django.utils import timezone

    from campaigns.models import Audience, Campaign, Promotion

    campaign = Campaign.objects.filter(name="Scale bench").first()
    if campaign:
        return campaign
    audience = Audience.objects.create(name="Everyone (bench)", rules={"match": "all", "rules": []}, created_by=by)
    campaign = Campaign.objects.create(name="Scale bench", audience=audience, created_by=by, holdout_percent=10)
    ends = timezone.now() + timedelta(days=14)
    for name, categories, value, code in (
        ("15% off produce", ["Produce"], 15, "PRODUCE15"),
        ("10% off dairy", ["Dairy"], 10, "DAIRY10"),
        ("5% off everything", [], 5, "ALL5"),
    ):
        campaign.promotions.add(
            Promotion.objects.create(
                name=name,
                kind="percent_off",
                value=value,
                categories=categories,
                ends_at=ends,
                code_mode="shared",
                shared_code=code,
            )  # fmt: skip
        )
    return campaign


def _workers_start(n, env):
    processes = []
    for i in range(n):
        log = open(Path(env["MEDIA_ROOT"]) / f"worker-{n}-{i}.log", "w")
        processes.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "promo_site",
                    "worker",
                    "-Q",
                    "default",
                    "--concurrency",
                    "1",
                    "--loglevel",
                    "WARNING",
                    "-n",
                    f"genbench{i}@%h",
                    "--without-gossip",
                    "--without-mingle",
                ],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        )
    from promo_site.celery import app

    deadline = time.monotonic() + 120
    while True:
        names = {name for reply in app.control.ping(timeout=1.0) or [] for name in reply}
        if sum(name.startswith("genbench") for name in names) >= n:
            return processes
        if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
            _workers_stop(processes)
            raise RuntimeError(f"the Celery workers did not start; see {env['MEDIA_ROOT']}/worker-{n}-*.log")


def _workers_stop(processes):
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def _peak_mib(processes):
    """The largest VmHWM (peak resident set) among the workers and their pool processes, in MiB."""
    pids = {p.pid for p in processes}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) in {p.pid for p in processes}:
                pids.add(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    peak = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except OSError:
            continue
    return peak / 1024


def _generate_with(n, campaign, by, env):
    from campaigns.models import Batch
    from campaigns.services.batches import batch_request

    processes = _workers_start(n, env)
    try:
        batch_id = batch_request(campaign=campaign, by=by)
        peak = 0.0
        while Batch.objects.filter(id=batch_id, status=Batch.Status.GENERATING).exists():
            peak = max(peak, _peak_mib(processes))
            time.sleep(1.0)
        peak = max(peak, _peak_mib(processes))
    finally:
        _workers_stop(processes)
    batch = Batch.objects.get(id=batch_id)
    if batch.status != Batch.Status.GENERATED:
        raise RuntimeError(f"batch {batch_id} ended {batch.status}: {batch.error}")
    return batch, peak


def _profiled(campaign, by, out):
    """One more batch generated in this process under cProfile (no worker started: its tasks are purged after),
    the profile written to `out`; returns (seconds under the profiler, the top functions by own time)."""
    import cProfile
    import io
    import pstats

    from campaigns.services.batches import batch_request
    from campaigns.services.generation import batch_generate
    from promo_site.celery import app

    batch_id = batch_request(campaign=campaign, by=by)
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.runcall(batch_generate, batch_id=batch_id, slice_seconds=24 * 3600)
    seconds = time.perf_counter() - started
    app.control.purge()  # the chunk tasks it queued: every chunk is done
    profiler.dump_stats(out)
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(40)
    return seconds, text.getvalue()


def _exactly_once(batch):
    from django.db.models import Count

    from campaigns.audiences import audience_query

    audience = audience_query(batch.settings.audience_rules).count()
    rows = batch.recipients.count()
    twice = batch.recipients.values("customer_id").annotate(n=Count("id")).filter(n__gt=1).count()
    return audience, rows, twice


def measure(
    *,
    database_url: str,
    scale: float,
    algorithm: str | None = None,
    workers=(1, 2),
    profile=None,
    train_customers=None,
) -> list[dict]:
    """Rows {"name", "value", "unit", "goal", "reference", "ok"} for generation on the shop at database_url."""
    # The smoke run (CI, scale 0.01) serves the transitions model: training the deep model and its grid there
    # would take most of the smoke's five minutes, and what is measured is serving, not training.
    algorithm = algorithm or ("deep" if scale >= 0.1 else "transitions")
    train_customers = train_customers or int(os.environ.get("BENCH_GENERATION_TRAIN_CUSTOMERS") or 0) or None
    media_root = Path(tempfile.gettempdir()) / f"promo_bench_media_{database_url.rsplit('/', 1)[-1]}"
    media_root.mkdir(exist_ok=True)
    _django(database_url, media_root)
    from promo_site.celery import app

    by = _marketer()
    version, train_seconds = _model(algorithm, by, train_customers=train_customers)
    campaign = _campaign(by)
    app.control.purge()
    # at least 16 chunks, so that 2 workers share the work evenly at small scales (5,000 at scale 0.32 and up)
    from shop.models import Customer

    chunk = min(5000, max(500, Customer.objects.count() // 16))
    env = dict(os.environ, DB_CONN_MAX_AGE="0", GENERATION_CHUNK_CUSTOMERS=str(chunk))
    rows, first = [], None
    for n in workers:
        batch, peak = _generate_with(n, campaign, by, env)
        audience, count, twice = _exactly_once(batch)
        seconds = (batch.generated_at - batch.started_at).total_seconds()
        rate = audience / seconds
        first = first or rate
        rows += [
            {"name": f"generation_{n}_worker{'s' if n > 1 else ''}", "value": round(rate, 1), "unit": "customers/s",
             "goal": GOAL_PER_SECOND, "reference": None if n == workers[0] else round(first, 1),
             "ok": rate >= GOAL_PER_SECOND, "seconds": round(seconds, 1), "customers": audience,
             "recipients": batch.summary.get("recipients"), "chunks": batch.chunks.count()},
            {"name": f"generation_{n}_worker{'s' if n > 1 else ''}_peak_memory", "value": round(peak), "unit": "MiB",
             "goal": GOAL_PEAK_MIB, "reference": None, "ok": peak <= GOAL_PEAK_MIB},
            {"name": f"generation_{n}_worker{'s' if n > 1 else ''}_every_customer_once", "value": int(count == audience
             and not twice), "unit": "bool", "goal": 1, "reference": None, "ok": count == audience and not twice,
             "rows": count, "customers": audience, "twice": twice},
        ]  # fmt: skip
    if profile:
        seconds, top = _profiled(campaign, by, profile)
        print(top, flush=True)
        rows.append({"name": "generation_in_process_profiled", "value": round(seconds, 1), "unit": "s",
                     "goal": None, "reference": None, "ok": True, "profile": str(profile)})  # fmt: skip
    for row in rows:
        row.update(scale=scale, algorithm=algorithm, model_version=version.id)
    if train_seconds:
        rows.append({"name": "generation_model_training", "value": round(train_seconds, 1), "unit": "s",
                     "goal": None, "reference": None, "ok": True, "scale": scale, "algorithm": algorithm,
                     "fitted_on": version.metrics.get("bench", "a version's own training")})  # fmt: skip
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=0.01)
    parser.add_argument("--database-url", required=True, help="the synthetic shop's database (its own)")
    parser.add_argument("--build", action="store_true", help="build the shop there first (drops the database)")
    parser.add_argument("--algorithm", help="the recommender to serve (default: deep; transitions below scale 0.1)")
    parser.add_argument("--workers", default="1,2", help="worker counts to measure, e.g. 1,2")
    parser.add_argument("--json", help="write the rows to this file")
    parser.add_argument(
        "--profile", help="then generate one more batch in this process under cProfile and write the profile here"
    )
    parser.add_argument(
        "--train-customers",
        type=int,
        help="fit the deep model on this many customers' orders only, not by a version's own training (scale 1)",
    )
    args = parser.parse_args()
    try:
        workers = tuple(int(n) for n in args.workers.split(","))
    except ValueError:
        parser.error(f"--workers takes numbers separated by commas, got {args.workers!r}")
    if args.build:
        from bench.synthetic_shop import build

        print(json.dumps(build(args.database_url, args.scale), indent=2), flush=True)
    rows = measure(
        database_url=args.database_url,
        scale=args.scale,
        algorithm=args.algorithm,
        workers=workers,
        profile=args.profile,
        train_customers=args.train_customers,
    )
    for row in rows:
        print(json.dumps(row))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
