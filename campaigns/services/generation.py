"""Batch generation: for every customer of the audience, the promotion and items to push, or why not.

Runs as Celery work: generate_batch plans the audience as chunks that any number of workers take
(generate_batch_chunk; services/generation_chunks.py), each generated CHUNK customers at a time in its own
transaction with the progress written after it. A chunk taken over from a lost worker resumes: customers
that already have a row are skipped. Messages are not stored: each is rendered once and discarded, to record
a failure (campaigns/messages.py). See docs/ARCHITECTURE.md, "Choosing the promotion", for the expected-value formula.
"""

import logging
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from functools import cached_property, partial
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.db.models.functions import Coalesce
from django.utils import timezone

from campaigns.audiences import audience_query, shop_clock
from campaigns.eligibility import Eligibility
from campaigns.lift import campaign_lifts, lifts_prepare
from campaigns.messages import BatchMessages, item_wording
from campaigns.models import Batch, BatchEvent, GenerationChunk, Promotion, PromotionCode, Recipient
from campaigns.rendering import TemplateProblem, promotion_fields
from campaigns.services.batches import BatchStateError, batch_transition
from campaigns.services.generation_chunks import (
    chunk_claim,
    chunk_finish,
    chunk_heartbeat,
    chunk_held,
    chunk_report,
    chunks_left,
    chunks_plan,
)
from campaigns.services.summary import batch_summarise
from promo_site import jobs
from promo_site.outbox import outbox_enqueue
from recommender import serving
from recommender.ml.response.value import incremental_profit
from recommender.models import ModelVersion
from recommender.response import ARTIFACT as RESPONSE_ARTIFACT
from recommender.response import ResponsePredictor
from shop.models import Customer, Item

log = logging.getLogger(__name__)
CHUNK = 500  # customers per transaction; 500 x 100k items of float32 probabilities is 200 MB at most
# Customers whose purchases the response model reads at once (one query for ten transactions: each read costs
# PostgreSQL a plan and a probe of every month's partition, 25 ms, beside about 3 us a purchase row)
RESPONSE_READ = 10 * CHUNK
# Embedded mode runs on SQLite, which has no sequence to draw ids from: there a chunk's rows are inserted first
# to get their ids, then completed.
POSTGRES = settings.DB_IS_POSTGRES
Reason = Recipient.Reason
HELD_OUT = (Reason.HOLDOUT, Reason.GLOBAL_HOLDOUT)
TOP_BLOCK = 32  # a recipient's items: the maxima of blocks of this many columns bound the k-th best (_top_columns)


@dataclass
class Candidate:
    """A candidate promotion as vectors over the model's items."""

    promotion: object
    eligible: np.ndarray  # bool (n_items,)
    margin: np.ndarray  # margin per redemption on each item (units taken x unit margin)
    revenue: np.ndarray  # revenue per redemption on each item
    cost: np.ndarray  # discount cost per redemption on each item
    pool: bool


def _item_vectors(item_ids):
    rows = Item.objects.filter(id__in=item_ids.tolist()).values_list("id", "price", "cost")
    index = {int(i): n for n, i in enumerate(item_ids)}
    price = np.zeros(len(item_ids))
    margin = np.zeros(len(item_ids))
    for item_id, item_price, item_cost in rows:
        p = float(item_price or 0)
        price[index[item_id]] = p
        # Without a cost the shop's typical margin rate stands in (DEFAULT_MARGIN_RATE, documented).
        margin[index[item_id]] = p - float(item_cost) if item_cost is not None else p * settings.DEFAULT_MARGIN_RATE
    return price, margin


def _candidates(promotions, item_ids):
    from campaigns.affinity import eligible_columns

    price, margin = _item_vectors(item_ids)
    out = []
    for promotion in promotions:
        units = promotion.units_per_redemption()
        cost = np.array([float(promotion.discount_cost(Decimal(str(p)))) for p in price])
        out.append(
            Candidate(
                promotion=promotion,
                eligible=eligible_columns(promotion, item_ids),
                margin=margin * units,
                revenue=price * units,
                cost=cost,
                pool=promotion.code_mode == promotion.CodeMode.POOL,
            )
        )
    return out


# A version's response model at the shop's present, kept per worker process: loading it reads a year of
# purchases (15 s at 10,000 customers), and every batch of that version at that clock would load the same.
# Keyed by the version, its artifact's modification time (a retrained or replaced file is read again) and
# the shop's clock (a new purchase moves it, and the features with it); kept RESPONSE_FRESH_SECONDS at most,
# so events imported with past dates reach the next batch within that time.
RESPONSE_KEPT = 2
RESPONSE_FRESH_SECONDS = 600
# (version id, artifact path, its mtime, shop clock) -> (loaded at, ResponsePredictor or None)
_responses = OrderedDict()
_responses_lock = threading.Lock()


def response_predictor(version, *, now):
    """ResponsePredictor.of_version(version, now=now), loaded once per worker process while it stays fresh."""
    path = Path(settings.MEDIA_ROOT) / version.artifact / RESPONSE_ARTIFACT if version.artifact else None
    mtime = path.stat().st_mtime_ns if path is not None and path.exists() else None
    key = (version.id, str(path), mtime, now)
    with _responses_lock:
        loaded = _responses.get(key)
        if loaded is not None and time.monotonic() - loaded[0] < RESPONSE_FRESH_SECONDS:
            _responses.move_to_end(key)
            return loaded[1]
    predictor = ResponsePredictor.of_version(version, now=now)
    with _responses_lock:
        _responses[key] = (time.monotonic(), predictor)
        _responses.move_to_end(key)
        while len(_responses) > RESPONSE_KEPT:
            _responses.popitem(last=False)
    return predictor


class Generator:
    """Generates one batch from its frozen settings (batch.settings), never from the live campaign."""

    def __init__(self, batch):
        self.batch = batch
        self.settings = batch.settings
        # The batch keeps the version it started with: a task redelivered after a new activation resumes on it.
        self.served = serving.served_model(version_id=batch.model_version_id)
        self.version, self.item_ids = self.served.version, self.served.item_ids
        candidates = Promotion.objects.filter(id__in=self.settings.promotion_ids).order_by("id")
        self.promotions = [p for p in candidates if p.unusable_reason() is None]
        if not self.promotions:
            raise ValueError("none of the campaign's promotions can be offered any more")
        self.candidates = _candidates(self.promotions, self.item_ids)
        self.pool_left = {p.id: p.codes_available() for p in self.promotions if p.code_mode == p.CodeMode.POOL}
        if not batch.message_snapshot:  # fixed once: a resumed generation renders with the same wording
            batch.message_snapshot = {"promotions": {str(p.id): promotion_fields(p) for p in self.promotions}}
            Batch.objects.filter(id=batch.id).update(message_snapshot=batch.message_snapshot)
        self.messages = BatchMessages(batch)
        # A new item's "because you bought X" costs a removal pass of the model per recipient (about 50 runs
        # of the history): done only when the messages show it (item.because, item.reason).
        templates = self.settings.subject_template + self.settings.body_template
        self.explain_new = "because" in templates or "reason" in templates
        self.base_rate = float(self.settings.base_response_rate)
        # p(response) from the version's response model; without one, the proxy (base rate x mass).
        self.response = response_predictor(self.version, now=shop_clock())
        # p0 -> p1: each promotion's lift from campaigns/lift.py's hierarchy (the uplift model's: per customer)
        self.lifts = campaign_lifts(
            campaign_id=batch.campaign_id, promotions=self.promotions, before_batch_id=batch.id, at=shop_clock()
        )
        self.eligibility = Eligibility(batch)
        self.now = shop_clock()  # "last time N days ago" is counted on the shop's clock

    def run(self, first, last, progress, hold=lambda: None):
        """Generate the audience's customers with ids first..last that have no row yet, CHUNK at a time, each
        in its own transaction (hold() first, inside it); progress(done) after each."""
        done_already = self.batch.recipients.filter(customer_id__gte=first, customer_id__lte=last)
        todo = list(
            audience_query(self.settings.audience_rules)
            .filter(id__gte=first, id__lte=last)
            .exclude(id__in=done_already.values("customer_id"))
            .order_by("id")
            .values_list("id", flat=True)
        )
        done = done_already.count()
        for start in range(0, len(todo), CHUNK):
            if self.response is not None and start % RESPONSE_READ == 0:
                # the response model reads these customers' purchases once for the next transactions
                self.response.prepare(todo[start : start + RESPONSE_READ])
            with transaction.atomic():
                _no_jit()
                hold()
                self._chunk(todo[start : start + CHUNK])
            progress(done + min(start + CHUNK, len(todo)))

    def _chunk(self, customer_ids):
        """One insert of the chunk's rows, each complete: ids are taken from the sequence first, so that
        codes, links and the render check need no second write."""
        customers = Customer.objects.in_bulk(customer_ids)
        # other workers take codes from the same pools: what is left is read per chunk
        self.pool_left = {p.id: p.codes_available() for p in self.promotions if p.code_mode == p.CodeMode.POOL}
        reasons = self.eligibility.reasons([customers[c] for c in customer_ids])
        rows, scored = [], []
        ids = _recipient_ids(len(customer_ids)) if POSTGRES else [None] * len(customer_ids)
        for customer_id, row_id in zip(customer_ids, ids):
            reason = reasons[customer_id]
            row = Recipient(
                id=row_id,
                batch=self.batch,
                customer=customers[customer_id],
                outcome=Recipient.Outcome.EXCLUDED,
                reason=reason,
            )
            rows.append(row)
            if reason in ("", *HELD_OUT):  # the held out get the promotion they would have had, unsent
                scored.append(row)
        if not POSTGRES:  # SQLite (embedded mode) has no sequence to draw from: the insert gives the ids
            Recipient.objects.bulk_create(rows)
        self._choose(scored)
        chosen = [r for r in scored if r.outcome == Recipient.Outcome.RECIPIENT]
        self._assign_codes(chosen)
        self._word_items([r for r in scored if r.items])
        self._render_check([r for r in chosen if r.outcome == Recipient.Outcome.RECIPIENT])
        if POSTGRES:
            _rows_insert(rows)
        else:
            Recipient.objects.bulk_update(rows, [f.name for f in Recipient._meta.concrete_fields if not f.primary_key])

    def _choose(self, rows):
        if not rows:
            return
        by_customer = {row.customer_id: row for row in rows}
        weights = self._weights
        # What each customer may be shown (stock, purchases, "not interested") is serving's rule.
        chunks = serving.serve_chunks(
            self.served, customer_ids=list(by_customer), items=self.settings.item_kinds, now=self.now
        )
        for chunk in chunks:
            sums = (chunk.proba @ weights).reshape(len(chunk.customer_ids), len(self.candidates), 4)
            responses = self._responses(chunk.customer_ids, sums[:, :, 0])
            lifts_prepare(self.lifts.values(), chunk.customer_ids)
            values = self._values(chunk.customer_ids, sums.astype(np.float64), responses)
            for n, customer_id in enumerate(chunk.customer_ids):
                row = by_customer[customer_id]
                reasons = partial(chunk.reasons, n, now=self.now, explain_new=self.explain_new)
                self._choose_one(row, chunk.proba[n], [v[n] for v in values], chunk.showable[n], reasons)

    @cached_property
    def _weights(self):
        """(items, 4 x candidates) float32: one matrix product per chunk gives, per customer and candidate, the
        probability mass on the eligible items and the probability-weighted margin, revenue and discount cost
        over them (the same for every chunk: built once)."""
        return np.stack(
            [
                w
                for c in self.candidates
                for w in (c.eligible, c.eligible * c.margin, c.eligible * c.revenue, c.eligible * c.cost)
            ],
            axis=1,
        ).astype(np.float32)

    def _responses(self, customer_ids, mass):
        """p(response) per customer and candidate: the response model's, else base rate x mass (the proxy)."""
        if self.response is None:
            return self.base_rate * mass.astype(np.float64)
        return np.stack(
            [self.response.predict(customer_ids, self.item_ids[c.eligible]) for c in self.candidates], axis=1
        )

    def _values(self, customer_ids, sums, responses):
        """Per customer and candidate, as (n, candidates) float64 arrays: the probability mass on its eligible
        items, p0, p1, the expected value, and the margin, revenue and discount cost given a response. Computed
        for the chunk at once, element by element as for one customer (the same numbers)."""
        mass, margin, revenue, cost = (sums[:, :, k] for k in range(4))
        # Given a response, the item bought follows the model's distribution over the eligible items (where
        # the mass is 0 the candidate is not offered: the quotient there is never read).
        with np.errstate(divide="ignore", invalid="ignore"):
            margin, revenue, cost = margin / mass, revenue / mass, cost / mass
        # p0 without the offer, p1 with it; the discount is paid on every redemption, wanted or not
        p0 = np.asarray(responses, np.float64)
        p1 = np.stack(
            [
                self.lifts[candidate.promotion.id].treated_many(p0[:, k], customer_ids)
                for k, candidate in enumerate(self.candidates)
            ],
            axis=1,
        )
        with np.errstate(invalid="ignore"):
            value = incremental_profit(p0, p1, margin, cost)
        return mass, p0, p1, value, revenue, cost, margin

    def _choose_one(self, row, proba, values, showable, reasons_of):
        """Expected value of each candidate; the best one with something to show (and a code left) wins.
        ``values``: this customer's row of each of _values' arrays."""
        options = []
        for k, candidate in enumerate(self.candidates):
            mass, p0, p1, value, revenue, cost, margin = (v[k] for v in values)
            if mass <= 0:
                continue
            options.append((float(value), (float(p0), float(p1)), revenue, cost, margin, candidate))
        options.sort(key=lambda option: -option[0])
        row.alternatives = [
            {"promotion_id": c.promotion.id, "name": c.promotion.name, "expected_value": round(v, 4)}
            for v, *_rest, c in options
        ]
        chosen, pool_empty = None, False
        if self.settings.only_where_it_pays:
            options = [option for option in options if option[0] > 0]
            if not options:
                # the holdout too, so that treated and holdout stay comparable
                row.outcome = Recipient.Outcome.EXCLUDED
                row.reason = row.reason if row.reason == Reason.GLOBAL_HOLDOUT else Reason.NOT_PAYING
                return
        for option in options:
            candidate = option[-1]
            columns = np.flatnonzero(candidate.eligible & showable)
            if not len(columns):
                continue
            if candidate.pool and row.reason not in HELD_OUT and self.pool_left[candidate.promotion.id] <= 0:
                pool_empty = True
                continue
            chosen = (option, columns)
            break
        if chosen is None:
            if not row.reason:
                row.reason = Reason.POOL_EXHAUSTED if pool_empty else Reason.NO_ELIGIBLE_ITEM
            return
        (value, (p0, p1), revenue, cost, margin, candidate), columns = chosen
        k = min(self.settings.items_per_message, len(columns))
        top = _top_columns(columns, proba, k)
        reasons = reasons_of(top)
        row.promotion = candidate.promotion
        row.p_baseline, row.p_response = p0, p1
        row.expected_value = Decimal(f"{value:.4f}")
        row.expected_revenue = Decimal(f"{p1 * revenue:.4f}")
        row.expected_discount = Decimal(f"{p1 * cost:.4f}")
        row.expected_margin = Decimal(f"{p1 * margin:.4f}")
        row.items = [
            {"item_id": int(self.item_ids[c]), "probability": float(proba[c]), **reason}
            for c, reason in zip(top, reasons)
        ]
        if row.reason not in HELD_OUT:
            row.outcome, row.reason = Recipient.Outcome.RECIPIENT, ""
            if candidate.pool:
                self.pool_left[candidate.promotion.id] -= 1
            else:
                row.code = candidate.promotion.shared_code

    def _assign_codes(self, rows):
        """Each pool recipient takes a free code; the row lock makes two batches never take the same one.
        The rows are not inserted yet: the code's foreign key to them is checked at commit."""
        by_promotion = {}
        for row in rows:
            if row.promotion.code_mode == row.promotion.CodeMode.POOL:
                by_promotion.setdefault(row.promotion_id, []).append(row)
        now = timezone.now()
        for promotion_id, waiting in by_promotion.items():
            free = list(
                PromotionCode.objects.select_for_update(skip_locked=True)
                .filter(promotion_id=promotion_id, recipient__isnull=True)
                .order_by("id")[: len(waiting)]
            )
            for row, code in zip(waiting, free):
                code.recipient_id, code.assigned_at, row.code = row.id, now, code.code
            for row in waiting[len(free) :]:  # another batch took them in the meantime
                row.outcome, row.reason, row.code = Recipient.Outcome.EXCLUDED, Reason.POOL_EXHAUSTED, ""
            PromotionCode.objects.bulk_update(free, ["recipient", "assigned_at"])

    def _word_items(self, rows):
        """Each chosen item's wording as it is now, beside its id (what the message will always show)."""
        ids = {e["item_id"] for row in rows for e in row.items}
        ids |= {e["because_item_id"] for row in rows for e in row.items if e["because_item_id"]}
        items = Item.objects.in_bulk(ids)
        for row in rows:
            for entry in row.items:
                because = items.get(entry["because_item_id"]) if entry["because_item_id"] else None
                entry.update(item_wording(items[entry["item_id"]], because, entry.get("reason", "")))

    def _render_check(self, rows):
        """Render every recipient's message once and discard it: a failure is recorded on its row, and
        approval is refused while any row has one (services/batches.py)."""
        for row in rows:
            try:
                self.messages.check(row)
            except TemplateProblem as problem:
                row.render_error = str(problem)


def _no_jit():
    """No JIT compilation for the rest of this transaction (PostgreSQL; the chunk's own, unless generation runs
    inside another transaction, as in a test). A chunk's queries each take
    milliseconds, but on tables whose statistics are not yet taken (the recipients of a first batch) their
    estimated cost passes jit_above_cost, and compiling took 40 ms for a query that ran in 35 (the frequency
    cap's, per 500 customers)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL jit = off")


def _rows_insert(rows):
    """Insert the chunk's rows with one COPY: what bulk_create would write (each field's pre_save and database
    value), without an INSERT of 30 parameters a row to build and parse."""
    if not rows:
        return
    fields = Recipient._meta.concrete_fields
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    table = connection.ops.quote_name(Recipient._meta.db_table)
    plain = [_PLAIN_VALUES.get(field.get_internal_type(), ()) for field in fields]
    with connection.cursor() as cursor, cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([_db_value(field, field.pre_save(row, True), kinds) for field, kinds in zip(fields, plain)])


# Per field type, the Python types whose value its get_db_prep_save returns unchanged (or equal) on
# PostgreSQL, None included: such a value skips Django's preparation, most of the insert's cost (10,000 rows'
# values: 0.8 to 1.0 s through Django, 0.3 to 0.4 s so, on the shared 2-core machine). JSON, str
# subclasses (choices), naive datetimes and decimals that are not finite (which Django refuses) take its path.
_PLAIN_VALUES = {
    **dict.fromkeys(("CharField", "TextField"), (str,)),
    **dict.fromkeys(("BigAutoField", "ForeignKey"), (int,)),  # small integers Django wraps (Int2)
    "DecimalField": (Decimal,),
    "FloatField": (float,),
    "DateTimeField": (datetime,),
}


def _db_value(field, value, kinds):
    """field.get_db_prep_save(value) for COPY, without Django's preparation where it changes nothing."""
    if (value is None and kinds) or (type(value) in kinds and _prepared(value)):
        return value
    return field.get_db_prep_save(value, connection)


def _prepared(value):
    if isinstance(value, datetime):
        return value.tzinfo is not None
    if isinstance(value, Decimal):
        return value.is_finite()
    return True


def _recipient_ids(n):
    """n fresh Recipient ids from the table's sequence."""
    if not n:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            [Recipient._meta.db_table, n],
        )
        return [row_id for (row_id,) in cursor.fetchall()]


class ClaimLost(Exception):
    """Another worker took this batch over (this one was silent too long): stop without touching it."""


def _generation_transition(batch_id, outcome, note, token, fields):
    """The job lifecycle's finish and fail of a generation, through the batch's one transition service."""
    action = BatchEvent.Action.GENERATED if outcome == jobs.FINISHED else BatchEvent.Action.FAILED
    by = Batch.objects.select_related("created_by").get(id=batch_id).created_by if outcome == jobs.FINISHED else None
    try:
        batch_transition(batch_id, action, by=by, comment=note, held_by=token, **fields)
    except BatchStateError:
        return False  # cancelled, finished by an earlier delivery, or another worker's now
    return True


# Generation as a long job. Its heartbeat is kept fresh every 30 s by a thread while it runs, so a worker
# silent for 3 minutes is gone: a redelivered task (after a killed worker) takes the batch over and resumes
# where the rows end; beside a live worker (a redelivery after the broker's visibility timeout) it does
# nothing and the task looks again later (HELD). A batch silent for 10 minutes (a whole worker host lost:
# Redis redelivers its task only after an hour) is requeued by the sweeper, up to MAX_REQUEUES times, and
# then failed with the reason.
GENERATION_JOB = jobs.JobLifecycle(
    model=Batch,
    queued=Batch.Status.GENERATING,
    running=Batch.Status.GENERATING,
    done=Batch.Status.GENERATED,
    failed=Batch.Status.FAILED,
    silent_after=timedelta(minutes=10),
    takeover_after=timedelta(seconds=settings.GENERATION_TAKEOVER_SECONDS),
    after_loss="It was requeued 3 times and lost each time: generate a new batch, and check the workers' logs.",
    transition=_generation_transition,
)
MAX_REQUEUES = 3
HELD = "held by a live worker"
EXPECTED_FAILURES = (serving.NoActiveModel, ModelVersion.DoesNotExist, ValueError, ClaimLost)


def batch_generate(*, batch_id, slice_seconds=None):
    """The generate_batch task's body: claim the batch, plan its chunks, queue a task for each other chunk,
    then generate chunks itself (any it can claim) for up to `slice_seconds` (GENERATION_SLICE_SECONDS) and
    finish the batch if none is left. Returns HELD when another worker holds the batch now (the task then
    looks again later)."""
    token = GENERATION_JOB.claim(batch_id, progress={"phase": "starting", "done": 0, "total": 0})
    if not token:  # finished, failed, or a live worker has it: then the task looks again later
        return HELD if Batch.objects.filter(id=batch_id, status=Batch.Status.GENERATING).exists() else None
    batch = Batch.objects.select_related("campaign__audience").get(id=batch_id)
    deadline = time.monotonic() + (settings.GENERATION_SLICE_SECONDS if slice_seconds is None else slice_seconds)
    failed = {"progress": {"phase": "failed"}}
    with (
        GENERATION_JOB.heartbeat(batch_id, token),
        GENERATION_JOB.failures_recorded(batch_id, expected=EXPECTED_FAILURES, reraise=True, token=token, **failed),
    ):
        generator = _generator(batch)
        Batch.objects.filter(id=batch_id, worker=token).update(
            model_version=generator.version, response_model=generator.version if generator.response else None
        )
        chunks_plan(batch)
        # every open chunk gets a task, the ones this task is about to take too: if its slice ends first,
        # they are not left to the sweeper
        open_chunks = GenerationChunk.objects.filter(batch_id=batch_id).exclude(status=GenerationChunk.Status.DONE)
        for number in open_chunks.values_list("number", flat=True):
            outbox_enqueue("campaigns.tasks.generate_batch_chunk", batch_id, number)
        while time.monotonic() < deadline and _chunk_generate(generator, batch_id):
            pass
        _finish_if_done(generator, batch_id)


def batch_chunk_generate(*, batch_id, number):
    """The generate_batch_chunk task's body: claim chunk `number` of the batch, generate it, and finish the
    batch if it was the last. Returns HELD when another live worker holds that chunk (a redelivery)."""
    batch = Batch.objects.select_related("campaign__audience").filter(id=batch_id).first()
    if batch is None or batch.status != Batch.Status.GENERATING:
        return None
    failed = {"progress": {"phase": "failed"}}
    with GENERATION_JOB.failures_recorded(batch_id, expected=EXPECTED_FAILURES, reraise=True, **failed):
        generator = _generator(batch)
        if not _chunk_generate(generator, batch_id, number=number):
            chunk = GenerationChunk.objects.filter(batch_id=batch_id, number=number).first()
            return HELD if chunk is not None and chunk.status != GenerationChunk.Status.DONE else None
        _finish_if_done(generator, batch_id)
    return None


def _chunk_generate(generator, batch_id, number=None):
    """Claim one chunk (this one, or any claimable) and generate it. False when there was none to claim."""
    token = secrets.token_hex(8)
    chunk = chunk_claim(batch_id, token=token, number=number)
    if chunk is None:
        return False

    def progress(done):
        if not chunk_report(chunk, token, done):
            raise ClaimLost(f"chunk {chunk.number} of batch {batch_id} was taken over, or the batch is not generating")

    def hold():
        if not chunk_held(chunk, token):
            raise ClaimLost(f"chunk {chunk.number} of batch {batch_id} was taken over")

    try:
        with chunk_heartbeat(chunk, token):
            generator.run(chunk.first_customer_id, chunk.last_customer_id, progress, hold)
    except ClaimLost:
        log.warning("batch %s: chunk %s lost to another worker", batch_id, chunk.number)
        return True
    chunk_finish(chunk, token)
    return True


def _finish_if_done(generator, batch_id):
    """generating -> generated once every chunk is done (whichever worker gets here first; the transition
    is conditional, so one does)."""
    if chunks_left(batch_id)["open"]:
        return False
    batch = Batch.objects.get(id=batch_id)
    summary = batch_summarise(batch=batch)
    summary["lifts"] = {
        str(pid): {"promotion": next(p.name for p in generator.promotions if p.id == pid), **lift.as_json()}
        for pid, lift in generator.lifts.items()
    }
    return GENERATION_JOB.finish(
        batch_id,
        summary=summary,
        render_failures=summary["render_failures"],
        generated_at=timezone.now(),
        progress={"phase": "done", "done": summary["total"], "total": summary["total"]},
    )


_generators = {}  # (batch id, created_at) -> its Generator: chunk tasks of one batch share the loaded state


def _generator(batch):
    key = (batch.id, batch.created_at)
    if key not in _generators:
        _generators.clear()
        _generators[key] = Generator(batch)
    return _generators[key]


def generations_sweep():
    """Beat: a generation whose worker is gone (silent for silent_after, or never picked up) goes back to the
    queue, where a new task resumes it after the rows already written; after MAX_REQUEUES it fails.
    Returns {batch id: "requeued" or "failed"}."""
    cutoff = timezone.now() - GENERATION_JOB.silent_after
    silent = (
        Batch.objects.filter(status=Batch.Status.GENERATING)
        .annotate(last_sign=Coalesce("heartbeat_at", "created_at"))
        .filter(last_sign__lt=cutoff)
        .values_list("id", flat=True)
    )
    outcome = {}
    for batch_id in silent:
        requeued = BatchEvent.objects.filter(batch_id=batch_id, action=BatchEvent.Action.REQUEUED).count()
        if requeued >= MAX_REQUEUES:
            if GENERATION_JOB.fail(batch_id, GENERATION_JOB.lost_message, progress={"phase": "failed"}):
                outcome[batch_id] = "failed"
            continue
        with transaction.atomic():
            try:
                # the lost worker's claim ends (its writes stop), and the time counts as a sign of life
                batch_transition(
                    batch_id,
                    BatchEvent.Action.REQUEUED,
                    comment="no report from its worker for 10 minutes: a new task resumes it",
                    worker="",
                    heartbeat_at=timezone.now(),
                )
            except BatchStateError:
                continue
            outbox_enqueue("campaigns.tasks.generate_batch", batch_id)
        outcome[batch_id] = "requeued"
    return outcome


def _top_columns(columns, proba, k):
    """The k of ``columns`` (ascending) with the highest ``proba``, best first, ties in column order: a
    stable argsort of them all, sorting only those at or above the k-th highest maximum of blocks of
    TOP_BLOCK columns (a lower bound of the k-th highest value). A whole-shop promotion's 100,000 eligible
    items took a tenth of generation's time sorted whole for every customer."""
    values = proba if len(columns) == len(proba) else proba[columns]  # (every column: no gather)
    if 0 < k and len(values) > 8 * TOP_BLOCK * k:
        maxima = values[: len(values) // TOP_BLOCK * TOP_BLOCK].reshape(-1, TOP_BLOCK).max(axis=1)
        keep = values >= np.partition(maxima, len(maxima) - k)[len(maxima) - k]
        columns, values = columns[keep], values[keep]
    return columns[np.argsort(-values, kind="stable")[:k]]
