from datetime import timedelta

import numpy as np
import pytest
from django.core.management import call_command
from django.utils import timezone

from recommender.models import ModelVersion
from recommender.services import RegistryError, modelversion_activate, modelversion_request, modelversion_train
from shop.models import Event
from tests.conftest import wait_for
from tests.factories import CustomerFactory, ItemFactory

Status = ModelVersion.Status


def shop_with_a_pattern(customers=40, items=12, length=8, seed=0):
    """Customers buy items in a cycle (i, i+1, i+2, ...): the next item is predictable."""
    rng = np.random.default_rng(seed)
    catalogue = [ItemFactory(external_id=f"sku-{i}") for i in range(items)]
    start = timezone.now() - timedelta(days=60)
    events = []
    for c in range(customers):
        customer = CustomerFactory(external_id=f"c{c}")
        first = int(rng.integers(items))
        for step in range(length):
            item = catalogue[(first + step) % items]
            events.append(
                Event(
                    customer=customer,
                    item=item,
                    type="purchase",
                    quantity=1,
                    value=item.price,
                    occurred_at=start + timedelta(days=step, minutes=c),
                    source="test",
                    client_event_id=f"{c}-{step}",
                )
            )
    Event.objects.bulk_create(events)
    return catalogue


def version(status, algorithm="transitions", **metrics):
    return ModelVersion.objects.create(algorithm=algorithm, status=status, metrics={"validation": metrics})


@pytest.mark.django_db
class TestStateMachine:
    def test_activating_a_ready_version_retires_the_active_one(self, admin_user):
        old, new = version(Status.ACTIVE), version(Status.READY)
        modelversion_activate(version=new, by=admin_user)
        old.refresh_from_db(), new.refresh_from_db()
        assert (old.status, new.status, new.activated_by) == (Status.RETIRED, Status.ACTIVE, admin_user)
        assert [e.action for e in new.audit.all()] == ["activated"]
        assert [e.action for e in old.audit.all()] == ["retired"]

    def test_a_retired_version_can_be_restored(self, admin_user):
        old, new = version(Status.RETIRED), version(Status.ACTIVE)
        modelversion_activate(version=old, by=admin_user)
        assert ModelVersion.objects.active().get() == old
        assert ModelVersion.objects.get(id=new.id).status == Status.RETIRED

    @pytest.mark.parametrize("status", [Status.QUEUED, Status.TRAINING, Status.FAILED, Status.ACTIVE])
    def test_only_ready_or_retired_versions_activate(self, status, admin_user):
        candidate = version(status)
        with pytest.raises(RegistryError, match="only a ready or retired version"):
            modelversion_activate(version=candidate, by=admin_user)

    def test_a_failed_training_leaves_the_active_version_serving(self):
        active = version(Status.ACTIVE)
        empty = modelversion_train(version_id=ModelVersion.objects.create(algorithm="pop").id)
        assert empty.status == Status.FAILED and "too little data to train" in empty.error
        shop_with_a_pattern(customers=10)
        broken = ModelVersion.objects.create(algorithm="transitions", parameters={"no_such_parameter": 1})
        modelversion_train(version_id=broken.id)
        broken.refresh_from_db()
        assert broken.status == Status.FAILED and "no_such_parameter" in broken.error
        assert ModelVersion.objects.active().get() == active

    def test_a_training_is_claimed_once(self):
        shop_with_a_pattern(customers=10)
        queued = ModelVersion.objects.create(algorithm="pop")
        assert modelversion_train(version_id=queued.id).status == Status.READY
        assert modelversion_train(version_id=queued.id) is None  # a redelivered task does nothing

    def test_a_first_run_version_activates_itself_only_when_it_validates_at_least_as_well(self):
        # given: the first run's quick transitions model, trained first, on a shop whose next item is predictable
        shop_with_a_pattern(customers=30)
        quick = modelversion_train(
            version_id=ModelVersion.objects.create(algorithm="transitions", reason="first run").id
        )
        assert quick.status == Status.ACTIVE
        # when a later first-run version validates worse (popularity cannot see the cycle; the rule is the
        # same for the deep model, which is too slow to train here)
        worse = modelversion_train(version_id=ModelVersion.objects.create(algorithm="pop", reason="first run").id)
        # then it stays ready and the quick one keeps serving
        assert worse.metrics["validation"]["ndcg@10"] < quick.metrics["validation"]["ndcg@10"]
        assert worse.status == Status.READY
        assert ModelVersion.objects.active().get() == quick
        # and one that validates as well replaces it
        again = modelversion_train(
            version_id=ModelVersion.objects.create(algorithm="transitions", reason="first run").id
        )
        assert again.status == Status.ACTIVE

    def test_a_stale_training_is_failed_by_the_sweeper(self):
        from recommender.services import modelversion_sweep_stale

        stale = ModelVersion.objects.create(
            algorithm="deep", status=Status.TRAINING, started_at=timezone.now() - timedelta(hours=5)
        )
        reporting = ModelVersion.objects.create(
            algorithm="deep",
            status=Status.TRAINING,
            started_at=timezone.now() - timedelta(hours=1),
            progress={"stage": "training", "epoch": 9},
            heartbeat_at=timezone.now() - timedelta(minutes=5),
        )
        modelversion_sweep_stale()
        assert ModelVersion.objects.get(id=stale.id).status == Status.FAILED
        assert ModelVersion.objects.get(id=reporting.id).status == Status.TRAINING  # still reporting: alive


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_trains_a_tiny_deep_model(celery_worker, settings):
    # given a small shop and the worker's media folder
    settings.MEDIA_ROOT = celery_worker.media_root
    shop_with_a_pattern(customers=30, items=10)
    # when a tiny deep model is requested
    requested_id = modelversion_request(
        algorithm="deep", parameters={"embed_dim": 8, "max_epochs": 2, "n_blocks": 1}, reason="first run"
    )
    # then the worker trains it, reports progress and, being a first run, activates it
    done = wait_for(
        # (ready is passed through: the activation follows the training's own commit)
        lambda: (
            ModelVersion.objects.filter(id=requested_id).exclude(status__in=["queued", "training", "ready"]).first()
        ),
        timeout=240,
    )
    assert done.status == Status.ACTIVE, (
        done.error,
        list(ModelVersion.objects.values_list("id", "status", "created_at")),
        done.metrics,
    )
    assert done.progress["stage"] == "done" and done.n_events == 240
    assert 0 <= done.metrics["validation"]["ndcg@10"] <= 1 and "hr@10" in done.metrics["test"]
    assert (celery_worker.media_root / done.artifact / "item_ids.npy").exists()
    assert [e.action for e in done.audit.order_by("id")] == ["requested", "trained", "activated"]


@pytest.mark.django_db
def test_recsys_eval_on_a_sequences_file(tmp_path):
    rng = np.random.default_rng(1)
    lines = []
    for user in range(60):
        start = int(rng.integers(20))
        lines.append(" ".join([f"u{user}"] + [f"i{(start + step) % 20}" for step in range(6)]))
    path = tmp_path / "seq.txt"
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "r.json"
    call_command("recsys_eval", sequences=str(path), models="pop,transitions", k="10,20", json_path=str(out))
    import json

    result = json.loads(out.read_text())
    for name in ("pop", "transitions"):
        assert set(result["models"][name]) >= {"hr@10", "ndcg@10", "hr@20", "ndcg@20", "train_seconds"}
    # the cycle is perfectly predictable from the last item
    assert result["models"]["transitions"]["hr@10"] == 1.0
    assert result["models"]["transitions"]["ndcg@10"] > result["models"]["pop"]["ndcg@10"]


@pytest.mark.django_db
def test_recsys_eval_on_the_database_splits_by_time(tmp_path, capsys):
    shop_with_a_pattern(customers=40, items=12, length=10)
    out = tmp_path / "db.json"
    call_command("recsys_eval", source="db", models="pop,transitions", json_path=str(out))
    import json

    result = json.loads(out.read_text())
    assert result["split"].startswith("time")
    assert result["evaluated_users"] > 0
    assert "transitions" in capsys.readouterr().out


def test_recsys_eval_rejects_bad_arguments(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="exactly one of"):
        call_command("recsys_eval")
    with pytest.raises(CommandError, match="unknown model"):
        call_command("recsys_eval", source="db", models="pop,magic")
