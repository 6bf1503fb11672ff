"""The model registry's transitions: request, train, activate. Each runs in one transaction with an audit record."""

import logging
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from promo_site import jobs
from promo_site.outbox import outbox_enqueue
from recommender.interactions import interactions_load, item_features, purchase_orders_load
from recommender.ml.registry import MODELS, model_spec
from recommender.models import ModelEvent, ModelVersion
from recommender.response import response_model_train

log = logging.getLogger(__name__)
Status = ModelVersion.Status

DEFAULT_PARAMETERS = {spec.name: spec.defaults for spec in MODELS}  # what a new version starts from
NEXT_BASKET_METRIC = "next_basket_recall@10"  # the validation metric where the shop's purchases form orders
# How a version was trained (its metrics["mode"]): on the shop's orders, scoring the next basket (the deep
# model where next-basket validation exists: repeat-aware), or on item sequences, scoring the next item.
MODE_NEXT_BASKET, MODE_NEXT_ITEM = "next-basket", "next-item"
# A training reports after each epoch; silence this long means its worker is gone (killed, out of memory,
# stopped with Ctrl-C). The task's own hard time limit is 2 hours.
SILENT_TRAINING = timedelta(minutes=45)


class RegistryError(Exception):
    """A transition the registry does not allow; the message says why."""


def _audit(version, action, by=None, note=""):
    ModelEvent.objects.create(version=version, action=action, by=by, note=note)


def modelversion_request(*, algorithm, parameters=None, by=None, reason="manual") -> int:
    """Queue the training of a new version on the `ml` queue (through the outbox); returns its id."""
    with transaction.atomic():
        version = ModelVersion.objects.create(
            algorithm=algorithm,
            parameters={**DEFAULT_PARAMETERS.get(algorithm, {}), **(parameters or {})},
            created_by=by,
            reason=reason,
        )
        _audit(version, "requested", by, reason)
        outbox_enqueue("recommender.tasks.train_model_version", version.id)
    return version.id


def artifact_dir(version):
    return Path(settings.MEDIA_ROOT) / "models" / str(version.id)


def _audit_job(version_id, transition, note):
    # The registry's own names: a request wrote "requested" and _train writes "trained"; a failure (an
    # exception, or the sweeper) writes "failed" with its message.
    if transition == jobs.FAILED:
        ModelEvent.objects.create(version_id=version_id, action="failed", note=note[:500])


TRAINING_JOB = jobs.JobLifecycle(
    model=ModelVersion,
    queued=Status.QUEUED,
    running=Status.TRAINING,
    done=Status.READY,
    failed=Status.FAILED,
    silent_after=SILENT_TRAINING,
    after_loss="The active version keeps serving.",
    audit=_audit_job,
)


def modelversion_train(*, version_id):
    """Train a queued version (the body of the Celery task). Returns the version, or None if not ours."""
    token = TRAINING_JOB.claim(version_id, progress={"stage": "loading events"})
    if not token:
        return None  # a redelivered task, or another worker has it
    version = ModelVersion.objects.get(id=version_id)
    # Any failure ends the version failed with `TypeName: message`; the active one keeps serving.
    with TRAINING_JOB.failures_recorded(version_id, token=token) as outcome:
        _train(version, token)
    if outcome.failed:
        shutil.rmtree(artifact_dir(version), ignore_errors=True)
        return ModelVersion.objects.get(id=version_id)
    version.refresh_from_db()
    if version.reason in ("scheduled", "first run"):
        version = _auto_activate(version)
    return version


def _train(version, token):
    from recommender.ml.data import leave_one_out
    from recommender.ml.evaluation import fit_and_evaluate, sized_model

    until = timezone.now()
    data = interactions_load(until=until)
    if len(data.item_ids) < 2 or data.n_events < 10:
        raise RegistryError(f"too little data to train: {data.n_events} item events over {len(data.item_ids)} items")
    split = leave_one_out(data.histories, len(data.item_ids))
    model, parameters = sized_model(version.algorithm, split, version.parameters)
    ModelVersion.objects.filter(id=version.id).update(parameters=_plain(parameters))
    TRAINING_JOB.progress(version.id, {"stage": "next-basket validation"})
    basket_recall, parameters, rankings = _next_basket_recall(version.algorithm, parameters, until=until)
    if rankings:  # each kind of item from the ranking that won it at V
        model = model_spec(version.algorithm).make(**parameters)
        ModelVersion.objects.filter(id=version.id).update(parameters=_plain(parameters))
    if basket_recall is not None and hasattr(model, "basket_mode"):
        # The shop's purchases form orders: the deep model is the repeat/explore mixture, fitted on every
        # order (recommender/ml/deep_repeat.py) over the items ever bought; served on the customers' orders.
        data = purchase_orders_load(until=until)
        TRAINING_JOB.progress(version.id, {"stage": "training on orders"})
        model.fit(
            data.histories,
            timestamps=data.timestamps,
            orders=data.orders,
            n_items=len(data.item_ids),
            progress_callback=_progress_writer(version.id),
        )
        metrics = {"validation": {NEXT_BASKET_METRIC: basket_recall}, "mode": MODE_NEXT_BASKET}
        if rankings:  # how each kind of item is ranked, and what each way measured at V
            metrics["rank_choice"] = rankings
    else:
        metrics = fit_and_evaluate(
            model,
            split,
            # Event types and the time gaps between events are inputs of the models that use context.
            context=_context_parts(data, split),
            item_features=item_features(data.item_ids) if model_spec(version.algorithm).uses_context else None,
            progress_callback=_progress_writer(version.id),
        )
        if basket_recall is not None:
            metrics["validation"][NEXT_BASKET_METRIC] = basket_recall
        metrics["mode"] = MODE_NEXT_ITEM
    metrics["validation_metric"] = NEXT_BASKET_METRIC if basket_recall is not None else "ndcg@10"
    folder = artifact_dir(version)
    shutil.rmtree(folder, ignore_errors=True)
    model.save(folder)
    np.save(folder / "item_ids.npy", data.item_ids)
    # The response model (p of buying a promotion's items within MEASUREMENT_DAYS) trains with each version,
    # on the same events, and lives beside it: a batch generated from this version uses both.
    TRAINING_JOB.progress(version.id, {"stage": "response model"}, token=token)
    metrics["response"] = response_model_train(folder=folder, until=until)
    first = min((int(t[0]) for t in data.timestamps if len(t)), default=None)
    finished = TRAINING_JOB.finish(
        version.id,
        token=token,
        metrics=_plain(metrics),
        artifact=str(folder.relative_to(settings.MEDIA_ROOT)),
        n_customers=len(data.customer_ids),
        n_items=len(data.item_ids),
        n_events=data.n_events,
        data_until=until,
        data_from=datetime.fromtimestamp(first, tz=UTC) if first is not None else None,
        progress={"stage": "done"},
    )
    if not finished:  # the sweeper gave up on it meanwhile (its failure says why): not a version to serve
        raise RegistryError("the training was failed while it ran; its result is discarded")
    chosen = metrics["validation_metric"]
    _audit(version, "trained", note=f"validation {chosen} {metrics['validation'].get(chosen, 0):.4f}")


def _next_basket_recall(algorithm, parameters, until=None):
    """(next-basket recall@10 at V, parameters, the rankings chosen at V) of the algorithm fitted on the
    purchases before V, where the shop's purchases form orders around V.

    A model with a rank choice (registry.py: how it ranks each kind of item) has it chosen there, each by
    its kind's recall@10 at V (next_basket.choose_rankings), and returns the parameters with the choice and
    the report of it; else the parameters unchanged and {}. The recall is None where no customer has 2
    orders before V and one in the 28 days after it (then the leave-one-out NDCG@10 is the validation
    metric).
    """
    from recommender.ml import next_basket as nb

    data = purchase_orders_load(until=until)
    if not data.n_events:
        return None, parameters, {}
    _test, cutoff = nb.default_cutoffs(data.timestamps)
    split = nb.next_basket_split(data.histories, data.timestamps, data.orders, cutoff, n_items=len(data.item_ids))
    if not len(split.users):
        return None, parameters, {}
    parameters, rankings, model = nb.choose_rankings(algorithm, parameters, split, log=lambda _text: None)
    if model is None:
        model = nb.fit_on(model_spec(algorithm).make(**parameters), split)
    top = nb.ranked_lists(model, split, 10)
    return nb.basket_metrics(top, split.targets, split.eval_histories(), (10,))["recall@10"], parameters, rankings


def _context_parts(data, split):
    """Event types and timestamps cut like the leave-one-out split of the histories."""

    def cut(series, drop):
        return [s[: len(s) - drop] if len(s) >= 3 else s for s in series]

    users = split.eval_users
    train_types, train_stamps = cut(data.event_types, 2), cut(data.timestamps, 2)
    test_types, test_stamps = cut(data.event_types, 1), cut(data.timestamps, 1)
    return {
        "train": {"event_types": train_types, "timestamps": train_stamps},
        "validation": {"event_types": [train_types[u] for u in users], "timestamps": [train_stamps[u] for u in users]},
        "test": {"event_types": [test_types[u] for u in users], "timestamps": [test_stamps[u] for u in users]},
    }


def _plain(value):
    """JSON-safe copy (NumPy scalars to Python numbers)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _progress_writer(version_id):
    def report(epoch, metrics, elapsed, eta):
        TRAINING_JOB.progress(
            version_id,
            _plain(
                {
                    "stage": "training",
                    "epoch": epoch,
                    "metrics": metrics,
                    "elapsed": round(elapsed, 1),
                    "eta": None if eta is None else round(eta, 1),
                }
            ),
        )

    return report


def _auto_activate(version):
    """A scheduled or first-run version replaces the active one unless it validates worse; returns it as it
    now stands.

    Both are compared on the new version's validation metric (next-basket recall@10 at V where the shop
    has orders, else leave-one-out NDCG@10); an active version that was never measured on it is replaced.
    On the first run the deep model, queued after the quicker ones, thus activates itself only when it
    validates at least as well as the active one.
    """
    active = ModelVersion.objects.active().first()
    metric = version.metrics.get("validation_metric", "ndcg@10")
    mine = version.metrics.get("validation", {}).get(metric, 0)
    theirs = active.metrics.get("validation", {}).get(metric) if active else None
    if theirs is None or mine >= theirs:
        return modelversion_activate(version=version, by=None, note=f"automatic: validation {metric} not worse")
    return version


def modelversion_activate(*, version, by, note=""):
    """Make a ready (or a retired: restore) version the one that serves; the previous one retires."""
    with transaction.atomic():
        version = ModelVersion.objects.select_for_update().get(id=version.id)
        if version.status not in (Status.READY, Status.RETIRED):
            raise RegistryError(
                f"version #{version.id} is {version.status}; only a ready or retired version can be activated"
            )
        previous = list(ModelVersion.objects.select_for_update().active())
        for old in previous:
            old.status = Status.RETIRED
            old.save(update_fields=["status"])
            _audit(old, "retired", by, f"replaced by #{version.id}")
        version.status, version.activated_at, version.activated_by = Status.ACTIVE, timezone.now(), by
        version.save(update_fields=["status", "activated_at", "activated_by"])
        _audit(version, "activated", by, note)
    return version


def modelversion_sweep_stale():
    """A training whose worker died (killed, out of memory) is failed; the active version is untouched."""
    return TRAINING_JOB.sweep()
