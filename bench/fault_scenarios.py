"""The two scenarios of bench/faults.py: a send under kills and restarts, and API ingestion under restarts.

Each takes the bench's Run (its servers, processes, chaos actions and log) and returns its figures. Django
is configured by bench/faults.py before either runs, so Django imports happen inside the functions.
"""

import json
import random
import threading
import time
from collections import Counter
from datetime import timedelta

IDLE_S = 15.0  # no message changed state for this long: the batch's sender or a claimant was killed


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
        the sweeper's cut-off pass (the batch's claims and due times dated back an hour) and run the sweeper,
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
    """An hour passes for the batch's messages: what a sweeper after claims_settle_after() would see."""
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
