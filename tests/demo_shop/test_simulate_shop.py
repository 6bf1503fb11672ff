from datetime import datetime, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from campaigns.models import Batch, Recipient
from demo_shop.coverage import sent_batch, synthetic_shop
from demo_shop.models import SimulatedBatch
from demo_shop.simulator import Background, customers_in_open_windows
from demo_shop.transport import SOURCE
from promo_site.demo import POSTMARK_BACKEND
from shop.models import Event


@pytest.fixture
def demo(settings):
    settings.DEMO_MODE = True
    settings.DEMO_TIME_SCALE = 168  # a 14-day window closes in 2 hours
    settings.EMAIL_BACKEND = POSTMARK_BACKEND
    settings.ANYMAIL = {**settings.ANYMAIL, "POSTMARK_API_URL": "http://127.0.0.1:8025/"}
    return settings


def batch_sent(shop, ago):
    batch = sent_batch(shop=shop, number=0)
    at = timezone.now() - ago
    Batch.objects.filter(id=batch.id).update(send_started_at=at, sent_at=at)
    batch.recipients.filter(outcome=Recipient.Outcome.RECIPIENT).update(sent_at=at)
    return Batch.objects.get(id=batch.id)


@pytest.mark.django_db
def test_it_refuses_to_run_outside_demo_mode(settings):
    settings.DEMO_MODE = False
    with pytest.raises(CommandError, match="demo mode only"):
        call_command("simulate_shop", "--once")


@pytest.mark.django_db
def test_it_refuses_to_run_with_a_real_provider(demo):
    demo.ANYMAIL = {**demo.ANYMAIL, "POSTMARK_API_URL": "https://api.postmarkapp.com/"}
    with pytest.raises(CommandError, match="fake Postmark on loopback"):
        call_command("simulate_shop", "--once")


@pytest.mark.django_db(transaction=True)
def test_a_turn_plans_a_sent_batch_and_posts_its_due_purchases_through_the_api(demo, live_server):
    # given: a batch sent an hour ago, half-way through its (scaled) two-hour window
    shop = synthetic_shop(customers=300, seed="turn", batches=0)
    batch = batch_sent(shop, ago=timedelta(hours=1))
    # when
    call_command("simulate_shop", "--once", "--site", live_server.url, "--tick", "60")
    # then: the truth is recorded, and what was due by now is in the shop's events, with real timestamps
    simulation = SimulatedBatch.objects.get(batch=batch)
    assert simulation.window_end - simulation.window_start == timedelta(hours=2)
    assert list(simulation.lifts) == [str(shop["promotion"].id)]
    assert 0 <= simulation.lifts[str(shop["promotion"].id)] <= 8
    due = [entry for entry in simulation.plan if datetime.fromisoformat(entry["at"]) <= timezone.now()]
    assert 0 < simulation.posted == len(due) < len(simulation.plan)
    posted = Event.objects.filter(source=SOURCE, client_event_id__startswith=f"sim-{batch.id}-")
    assert posted.count() == simulation.posted
    assert all(simulation.window_start < event.occurred_at <= timezone.now() for event in posted)
    codes = [e.attributes.get("coupon_code") for e in posted if e.customer.external_id in treated_ids(batch)]
    assert "YOG15" in codes
    assert not any(e.attributes.get("coupon_code") for e in posted if e.customer.external_id not in treated_ids(batch))


def treated_ids(batch):
    return set(
        batch.recipients.filter(outcome=Recipient.Outcome.RECIPIENT).values_list("customer__external_id", flat=True)
    )


@pytest.mark.django_db
def test_a_batch_of_before_the_window_is_left_alone(demo, live_server):
    shop = synthetic_shop(customers=20, seed="old", batches=0)
    batch = batch_sent(shop, ago=timedelta(hours=3))  # its two-hour window has ended
    call_command("simulate_shop", "--once", "--site", live_server.url)
    assert not SimulatedBatch.objects.filter(batch=batch).exists()


@pytest.mark.django_db
def test_everyone_else_keeps_buying_but_not_the_customers_of_an_open_window(demo):
    # given: a shop with a history, and a batch whose window is open
    shop = synthetic_shop(customers=200, seed="others", batches=0)
    batch = batch_sent(shop, ago=timedelta(minutes=10))
    SimulatedBatch.objects.create(
        batch=batch, seed="s", window_start=batch.sent_at, window_end=timezone.now() + timedelta(hours=1), true_uplift=0
    )
    held = customers_in_open_windows()
    # when: a simulated week of shopping at the history's own rate
    now = shop["first_send"]
    events = Background(seed="x", scale=1.0).purchases(since=now - timedelta(days=7), now=now, excluded=held)
    # then
    assert len(held) == 200 and events == []  # every customer of this small shop is in the batch
    events = Background(seed="x", scale=1.0).purchases(since=now - timedelta(days=7), now=now, excluded=set())
    assert 50 < len(events) <= 1000
    assert all(now - timedelta(days=7) <= datetime.fromisoformat(e["occurred_at"]) <= now for e in events)


@pytest.mark.django_db
def test_a_batch_still_sending_keeps_its_customers_out_of_everyone_elses_shopping(demo):
    # given: a batch whose send started a minute ago and which the simulator has not planned yet
    shop = synthetic_shop(customers=30, seed="sending", batches=0)
    batch = batch_sent(shop, ago=timedelta(minutes=1))
    Batch.objects.filter(id=batch.id).update(status=Batch.Status.SENDING, sent_at=None)
    # when / then: its window opened with the send, so its customers buy by plan only
    assert len(customers_in_open_windows()) == 30
    # and a turn that began before the send, too: its purchases are spread over the whole turn
    assert len(customers_in_open_windows(since=timezone.now() - timedelta(minutes=5))) == 30
    # but not a turn that ended before the send
    before = timezone.now() - timedelta(minutes=2)
    assert customers_in_open_windows(now=before, since=before - timedelta(seconds=5)) == set()


@pytest.mark.django_db
def test_a_window_that_closes_during_a_turn_still_keeps_its_customers_out(demo):
    # given: a planned batch whose window ended a second ago
    shop = synthetic_shop(customers=20, seed="closing", batches=0)
    batch = batch_sent(shop, ago=timedelta(hours=2))
    SimulatedBatch.objects.create(batch=batch, seed="s", window_start=batch.sent_at,
                                  window_end=timezone.now() - timedelta(seconds=1), true_uplift=0)  # fmt: skip
    # when / then: a turn of the last five seconds overlaps its window; a turn after it does not
    assert len(customers_in_open_windows(since=timezone.now() - timedelta(seconds=5))) == 20
    assert customers_in_open_windows() == set()
