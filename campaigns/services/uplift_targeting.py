"""Uplift targeting: learn from past batches and their holdouts who buys *because* of a message, and let a
campaign keep the part of its audience with the highest predicted uplift.

Training set: every sent batch with a holdout whose measurement window has ended. Its treated (sent)
customers have treatment 1, its holdout customers treatment 0; the outcome is the campaign's measured
response within MEASUREMENT_DAYS of the send (a purchase of the eligible items of the promotion the
customer was given, or would have been given when held out; or any purchase, or a visit); the features
describe each customer's history *before* the send (customer_features). recommender.ml.uplift.fit_best
picks the estimator (two models or class transformation) by validation Qini and refits it on everything.
The fitted model and its feature spec are pickled with joblib to MEDIA_ROOT/uplift/model-<id>.joblib
(scikit-learn estimators pickle; the file is only ever read back by this code).
"""

import logging
from datetime import timedelta
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Count, Max, Q, Sum
from django.utils import timezone

from campaigns.models import Batch, Campaign, Recipient, UpliftModel
from campaigns.services.stats import RESPONSE_TYPES, batch_send_time, eligible_buyers, group_rows
from promo_site.demo import measurement_window
from promo_site.jobs import JobLifecycle
from promo_site.outbox import outbox_enqueue
from shop.models import Customer, Event, EventType

log = logging.getLogger(__name__)
CHUNK = 5000
TOP_CATEGORIES = 8
MAX_DEMOGRAPHICS = 20
NEVER_DAYS = 3650.0  # recency of a customer who never bought
HISTORY_FEATURES = [
    "recency_days",
    "purchases_365",
    "spend_365",
    "purchases_90",
    "views_90",
    "items_365",
    "mean_value_365",
]


class NotEnoughHistory(ValueError):
    """No past batch can teach the model anything yet; the message says what is missing."""


# --- features ----------------------------------------------------------------------


def feature_spec(customer_ids, at):
    """The feature names for a training: history, category mix over the shop's top categories, and
    numeric demographics found among these customers."""
    top = (
        Event.objects.filter(type=EventType.PURCHASE, occurred_at__lt=at, item__isnull=False)
        .exclude(item__category_path="")
        .values("item__category_path")
        .annotate(n=Count("id"))
        .order_by("-n")[:200]
    )
    counts = {}
    for row in top:
        head = row["item__category_path"].split(" > ")[0]
        counts[head] = counts.get(head, 0) + row["n"]
    categories = sorted(counts, key=lambda c: -counts[c])[:TOP_CATEGORIES]
    keys = set()
    for demographics in Customer.objects.filter(id__in=customer_ids[:CHUNK]).values_list("demographics", flat=True):
        keys.update(k for k, v in (demographics or {}).items() if _number(v) is not None)
    return {"categories": categories, "demographics": sorted(keys)[:MAX_DEMOGRAPHICS]}


def _number(value):
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    return None


def feature_names(spec):
    return HISTORY_FEATURES + [f"share:{c}" for c in spec["categories"]] + [f"demo:{k}" for k in spec["demographics"]]


def customer_features(customer_ids, at, spec):
    """(len(customer_ids), n_features) float array of each customer's history before `at`; NaN = an unknown
    demographic."""
    names = feature_names(spec)
    out = np.full((len(customer_ids), len(names)), np.nan)
    row_of = {c: n for n, c in enumerate(customer_ids)}
    for start in range(0, len(customer_ids), CHUNK):
        part = customer_ids[start : start + CHUNK]
        for row in _history(part, at, spec):
            out[row_of[row["customer_id"]], : len(HISTORY_FEATURES) + len(spec["categories"])] = _history_row(
                row, at, spec
            )
        for customer_id, demographics in Customer.objects.filter(id__in=part).values_list("id", "demographics"):
            base = len(HISTORY_FEATURES) + len(spec["categories"])
            for k, key in enumerate(spec["demographics"]):
                value = _number((demographics or {}).get(key))
                out[row_of[customer_id], base + k] = np.nan if value is None else value
    # Without any event before `at`: no purchase, no view; never bought counts as NEVER_DAYS ago (a column
    # that is all NaN breaks HistGradientBoosting's binning).
    history = out[:, : len(HISTORY_FEATURES) + len(spec["categories"])]
    history[:, 0][np.isnan(history[:, 0])] = NEVER_DAYS
    history[np.isnan(history)] = 0.0
    return out


def _history(customer_ids, at, spec):
    purchase = Q(type=EventType.PURCHASE)
    year, quarter = Q(occurred_at__gte=at - timedelta(days=365)), Q(occurred_at__gte=at - timedelta(days=90))
    shares = {
        f"c{n}": Count("id", filter=purchase & year & Q(item__category_path__startswith=category))
        for n, category in enumerate(spec["categories"])
    }
    return (
        Event.objects.filter(customer_id__in=customer_ids, occurred_at__lt=at)
        .values("customer_id")
        .annotate(
            last_purchase=Max("occurred_at", filter=purchase),
            purchases_365=Count("id", filter=purchase & year),
            spend_365=Sum("value", filter=purchase & year),
            purchases_90=Count("id", filter=purchase & quarter),
            views_90=Count("id", filter=Q(type=EventType.VIEW) & quarter),
            items_365=Count("item_id", filter=purchase & year, distinct=True),
            **shares,
        )
    )


def _history_row(row, at, spec):
    purchases = row["purchases_365"]
    spend = float(row["spend_365"] or 0)
    recency = (at - row["last_purchase"]).total_seconds() / 86400 if row["last_purchase"] else NEVER_DAYS
    values = [recency, purchases, spend, row["purchases_90"], row["views_90"], row["items_365"]]
    values.append(spend / purchases if purchases else 0.0)
    values += [row[f"c{n}"] / purchases if purchases else 0.0 for n in range(len(spec["categories"]))]
    return values


# --- training ------------------------------------------------------------------------


def training_batches(now=None):
    """Sent batches with a holdout whose measurement window has ended."""
    now = now or timezone.now()
    done = []
    batches = Batch.objects.filter(status=Batch.Status.SENT, recipients__reason=Recipient.Reason.HOLDOUT)
    for batch in batches.distinct().select_related("campaign").order_by("id"):
        start = batch_send_time(batch)
        if start and start + measurement_window() <= now:
            done.append((batch, start))
    return done


def _batch_rows(batch, start):
    """(customer ids, treatment, outcome) of one batch's treated and holdout customers, the outcome being the
    campaign's measured response in the window (for "a purchase of the promotion's eligible items", those of
    the promotion each customer was given or, held out, would have been given)."""
    treated, holdout = group_rows(batch, "treated"), group_rows(batch, Recipient.Reason.HOLDOUT)
    sent_to, held = list(treated.values_list("id", "customer_id")), list(holdout.values_list("id", "customer_id"))
    rows = sent_to + held
    ids = [c for _, c in rows]
    treatment = np.array([1] * len(sent_to) + [0] * len(held), dtype=int)
    end = start + measurement_window()
    if batch.campaign.measured_response == Campaign.Response.ELIGIBLE_PURCHASE:
        bought = eligible_buyers(treated, start, end) | eligible_buyers(holdout, start, end)
        return ids, treatment, np.array([row_id in bought for row_id, _ in rows], dtype=int)
    responded = set()
    for first in range(0, len(ids), CHUNK):
        responded.update(
            Event.objects.filter(
                customer_id__in=ids[first : first + CHUNK],
                type=RESPONSE_TYPES[batch.campaign.measured_response],
                occurred_at__gte=start,
                occurred_at__lt=end,
            ).values_list("customer_id", flat=True)
        )
    return ids, treatment, np.array([c in responded for c in ids], dtype=int)


def uplift_training_set(now=None):
    """(X, y, treatment, spec, batch ids); raises NotEnoughHistory when there is nothing to learn from."""
    batches = training_batches(now)
    if not batches:
        raise NotEnoughHistory(
            "Not enough history to train the uplift model: it needs at least one sent batch with a holdout "
            f"group whose {settings.MEASUREMENT_DAYS:g}-day measurement window has ended. Give a campaign a "
            "holdout percentage above 0, send a batch and train again after the window."
        )
    parts = [(batch, start, *_batch_rows(batch, start)) for batch, start in batches]
    all_ids = [c for part in parts for c in part[2]]
    spec = feature_spec(all_ids, max(start for _, start, *_ in parts))
    X = np.vstack([customer_features(ids, start, spec) for _, start, ids, _, _ in parts])
    treatment = np.concatenate([t for *_, t, _ in parts])
    y = np.concatenate([y for *_, y in parts])
    return X, y, treatment, spec, [batch.id for batch, *_ in parts]


def artifact_path(model):
    return Path(settings.MEDIA_ROOT) / "uplift" / f"model-{model.id}.joblib"


# The task's hard time limit (campaigns.tasks.train_uplift_model). fit_best reports nothing while it fits
# (about 3 minutes for 85,000 rows; the limit bounds it), so only a silence longer than the limit means
# the worker is gone: a live training is never swept.
UPLIFT_TRAIN_TIME_LIMIT = 3 * 3600
UPLIFT_TRAINING_JOB = JobLifecycle(
    model=UpliftModel,
    queued=UpliftModel.Status.QUEUED,
    running=UpliftModel.Status.TRAINING,
    done=UpliftModel.Status.READY,
    failed=UpliftModel.Status.FAILED,
    silent_after=timedelta(seconds=UPLIFT_TRAIN_TIME_LIMIT) + timedelta(minutes=15),
    after_loss="Campaigns keep targeting with the newest ready model.",
)


def uplift_model_request(*, by=None) -> int:
    """Queue a training of the uplift model on the `ml` queue (through the outbox); returns its id."""
    with transaction.atomic():
        model = UpliftModel.objects.create(created_by=by)
        outbox_enqueue("campaigns.tasks.train_uplift_model", model.id)
    return model.id


def uplift_model_train(*, model_id):
    """The task's body: claim the queued UpliftModel, train it, save the artifact, record the outcome.

    Returns the model, or None when it was not queued (a redelivered task, another worker).
    """
    if not UPLIFT_TRAINING_JOB.claim(model_id, progress={"stage": "reading past batches"}):
        return None
    # Too little history fails with the message that says what is missing; anything else with its type too.
    with UPLIFT_TRAINING_JOB.failures_recorded(model_id, expected=(NotEnoughHistory,)):
        _train(UpliftModel.objects.get(id=model_id))
    return UpliftModel.objects.get(id=model_id)


def _finite(value):
    """The scores with NaN (a metric undefined on its validation split, e.g. no control customer in the top k)
    as None: PostgreSQL's JSON has no NaN."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _train(model):
    import joblib

    from recommender.ml.uplift import fit_best

    X, y, treatment, spec, batch_ids = uplift_training_set()
    UPLIFT_TRAINING_JOB.progress(model.id, {"stage": "fitting", "rows": len(y)})
    selection = fit_best(X, y, treatment)
    path = artifact_path(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump({"model": selection.model, "spec": spec}, path)
    UPLIFT_TRAINING_JOB.finish(
        model.id,
        artifact=str(path.relative_to(settings.MEDIA_ROOT)),
        chosen=selection.chosen,
        features=feature_names(spec),
        scores=_finite(selection.candidates),
        batches=batch_ids,
        n_treated=int(treatment.sum()),
        n_control=int(len(treatment) - treatment.sum()),
        responders_treated=int(y[treatment == 1].sum()),
        responders_control=int(y[treatment == 0].sum()),
        # what its labels mean: campaigns/lift.py takes it as a source of lift only on the eligible purchase
        responses=sorted(
            set(Batch.objects.filter(id__in=batch_ids).values_list("campaign__measured_response", flat=True))
        ),
        progress={"stage": "done", "rows": len(y)},
    )


# --- scoring and the generation hook ------------------------------------------------------

_loaded = {}


def uplift_model_current():
    return UpliftModel.objects.filter(status=UpliftModel.Status.READY).order_by("-finished_at", "-id").first()


def uplift_model_load(model):
    """The saved {"model", "spec"} of an uplift model (read once, then kept while it is the newest)."""
    import joblib

    if model.id not in _loaded:
        _loaded.clear()
        _loaded[model.id] = joblib.load(Path(settings.MEDIA_ROOT) / model.artifact)
    return _loaded[model.id]


def uplift_predict(customer_ids, at=None, model=None):
    """Predicted uplift per customer (in the order given) under `model` (default: the newest ready one)."""
    model = model or uplift_model_current()
    if model is None:
        raise ValueError(
            "uplift targeting needs a trained uplift model: run `python manage.py train_uplift` "
            "(it trains on past batches with a holdout)"
        )
    saved = uplift_model_load(model)
    X = customer_features(list(customer_ids), at or timezone.now(), saved["spec"])
    return saved["model"].predict_uplift(X)
