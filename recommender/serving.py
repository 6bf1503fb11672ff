"""Serving: a model version's probabilities for customers, and what each customer may be shown.

The one way campaign work reads the recommender. A job loads one version and keeps it for its whole run
(``served_model``: the version a batch recorded, or the active one), then walks its customers with
``serve_chunks``, which yields per chunk of customers:

- ``proba``: (n, n_items) float32, the probability of each item being the customer's next one
  (columns in the order of ``served.item_ids``); of a basket-mode version (the repeat-aware deep model,
  fitted on the shop's orders), of each item being in the customer's next order, scored on their
  purchases grouped into orders at the caller's clock (``now``, see :func:`serve_chunks`);
- ``showable``: (n, n_items) bool, the items the customer may be shown: active and in stock, of the
  kinds the caller asks for (``ItemChoice``: bought before, never bought, or both ranked together),
  and not rejected ("not interested": the item itself and,
  once the customer said so of FEEDBACK_CATEGORY_AFTER different items of a category, every item of
  that category path and of the paths below it); read-only (one row seen n times) where every row is the same;
- ``bought``: (n, n_items) bool, the items the customer bought before; ``kind(row, columns)`` names
  each chosen item "buy_again" or "new";
- ``because(row, columns)``: for chosen item columns, the customer's past item that contributed most;
- ``reasons(row, columns, now=)``: for chosen item columns, the explanation a reviewer reads, faithful
  to the model (recommender/ml/explain.py): a buy-again item says how often and when the customer buys
  it; a new item names the history item whose removal lowers its score most, when that is material,
  else the customer's category it is popular with.

A worker process keeps the last two versions it loaded, so a batch pinned to a retired version and
the active one used elsewhere do not evict each other.
"""

import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from functools import cached_property
from itertools import chain
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db.models import Q

from recommender.interactions import TYPE_IDS, histories_for, purchase_orders_for, purchased_items
from recommender.ml.explain import removal_reasons, repeat_pattern, repeat_text
from recommender.ml.ranking import scored_chunks
from recommender.models import ItemChoice, ModelVersion
from shop.models import Event, EventType, Item

CHUNK = 512  # customers scored at once: 512 x 100k items of float32 is 200 MB
KEPT_VERSIONS = 2
_cache = OrderedDict()  # version id -> (model, item_ids), most recently used last
_lock = threading.Lock()


BUY_AGAIN, NEW = ItemChoice.BUY_AGAIN.value, ItemChoice.NEW.value  # the kind of one recommended item


class NoActiveModel(Exception):
    """No model version is active yet: train one and activate it."""


class ServedModel:
    """One trained version, loaded: what a job serves from, start to end."""

    def __init__(self, version, model, item_ids):
        self.version, self.model, self.item_ids = version, model, item_ids

    @property
    def basket_mode(self):
        """True for a model fitted on the shop's orders (the repeat-aware deep model): it scores each
        customer's purchases grouped into orders, at a reference time; else item histories of every type."""
        return bool(getattr(self.model, "basket_mode", False))

    @cached_property
    def column(self):
        """{item id: column} over item_ids."""
        return {int(item): n for n, item in enumerate(self.item_ids)}

    def columns_of(self, item_ids):
        """The column of each item id (an int64 array), -1 where the model has none."""
        ids, columns = self._by_id
        at = np.searchsorted(ids, item_ids).clip(max=max(len(ids) - 1, 0))
        found = ids[at] == item_ids if len(ids) else np.zeros(len(item_ids), bool)
        return np.where(found, columns[at] if len(ids) else -1, -1)

    @cached_property
    def _by_id(self):
        """(item ids ascending, the column of each)."""
        columns = np.argsort(np.asarray(self.item_ids, np.int64), kind="stable")
        return np.asarray(self.item_ids, np.int64)[columns], columns

    @cached_property
    def usable(self):
        """Boolean mask over item_ids: active, in-stock items (read once per ServedModel)."""
        usable = set(
            Item.objects.filter(id__in=self.item_ids.tolist(), active=True, in_stock=True).values_list("id", flat=True)
        )
        return np.fromiter((int(i) in usable for i in self.item_ids), dtype=bool, count=len(self.item_ids))

    @cached_property
    def categories(self):
        """Per column, the item's category as a reader names it: the first two levels of its path ("" if none)."""
        paths = dict(Item.objects.filter(id__in=self.item_ids.tolist()).values_list("id", "category_path"))
        short = lambda path: " > ".join(level.strip() for level in path.split(">")[:2]).strip(" >")  # noqa: E731
        return [short(paths.get(int(i)) or "") for i in self.item_ids]


@dataclass
class ServedChunk:
    """One chunk of customers (see the module docstring for the contract)."""

    served: ServedModel
    customer_ids: list
    histories: list  # item columns in time order, as scored
    proba: np.ndarray  # (n, n_items) float32
    showable: np.ndarray  # (n, n_items) bool
    bought: np.ndarray  # (n, n_items) bool: bought before
    context: dict = field(default_factory=dict)  # per customer: event_types or orders, timestamps, as scored
    at: float | None = None  # the reference time a basket-mode model scored at (seconds since the epoch)

    def reasons(self, row, columns, *, now, explain_new=True):
        """Per item column: {"kind", "because_item_id", "reason"}; ``now`` (a datetime) dates "last time".

        ``explain_new=False`` leaves a new item's reason empty: its removal pass (the model run on about 50
        variants of the history) is what an explanation costs, and a caller that shows none skips it."""
        kinds, history = self.kind(row, columns), np.asarray(self.histories[row], np.int64)
        context = {name: np.asarray(values[row]) for name, values in self.context.items()}
        new = [c for c, kind in zip(columns, kinds) if kind == NEW]
        if not explain_new:
            return [
                {"kind": kind, "because_item_id": None, "reason": self._repeat(history, context, column, now)}
                if kind == BUY_AGAIN
                else {"kind": kind, "because_item_id": None, "reason": ""}
                for column, kind in zip(columns, kinds)
            ]
        model = self.served.model if self.at is None else _AtTime(self.served.model, self.at)
        positions, _drops = removal_reasons(model, history, new, context)
        named = dict(zip(new, positions.tolist()))
        out = []
        for column, kind in zip(columns, kinds):
            if kind == BUY_AGAIN:
                out.append(
                    {"kind": kind, "because_item_id": None, "reason": self._repeat(history, context, column, now)}
                )
            elif named[column] >= 0:
                because = int(self.served.item_ids[history[named[column]]])
                out.append({"kind": kind, "because_item_id": because, "reason": "because you bought"})
            else:
                out.append({"kind": kind, "because_item_id": None, "reason": self._popular_with(history)})
        return out

    def _repeat(self, history, context, column, now):
        bought = history == column
        if "event_types" in context:
            bought &= context["event_types"] == TYPE_IDS["purchase"]
        if "timestamps" not in context or not bought.any():
            return "you bought this before"
        return repeat_text(*repeat_pattern(context["timestamps"][bought], now.timestamp()))

    def _popular_with(self, history):
        categories = Counter(self.served.categories[c] for c in history.tolist() if self.served.categories[c])
        if not categories:
            return "popular with customers like you"
        return f"popular with customers who buy {categories.most_common(1)[0][0]}"

    def kind(self, row, columns):
        """For each item column, "buy_again" when the customer bought it before, else "new"."""
        return [BUY_AGAIN if self.bought[row, c] else NEW for c in columns]

    def because(self, row, columns):
        """For each item column, the customer's past item (an Item id) that contributed most, or None."""
        history = self.histories[row]
        if not len(history) or not len(columns):
            return [None] * len(columns)
        reasons = self.served.model.explain(history, np.asarray(columns, np.int64))
        item_ids = self.served.item_ids
        return [None if reason is None or reason < 0 else int(item_ids[history[reason]]) for reason in reasons]


class _AtTime:
    """A basket-mode model's ``score_items`` at the chunk's reference time: explanations score what was served."""

    def __init__(self, model, at):
        self.model, self.at = model, at

    def score_items(self, histories, items, **context):
        return self.model.score_items(histories, items, now=self.at, **context)


def reference_time(now):
    """The reference time a basket-mode model scores at for a scoring time ``now`` (a datetime): the
    midnight after it, as the model's own training reference (the midnight after its newest purchase), so
    every purchase up to ``now`` counts and "days since" is counted in whole days as in training."""
    day = 86400.0
    return float((np.floor(now.timestamp() / day) + 1.0) * day)


def served_model(*, version_id=None):
    """The given model version (a batch's pinned one), or the active one, loaded once per process.

    Raises NoActiveModel without a version id when none is active, ModelVersion.DoesNotExist for an
    unknown id.
    """
    from recommender.ml import load

    if version_id is None:
        version = ModelVersion.objects.active().first()
        if version is None:
            raise NoActiveModel("no model version is active; train one and activate it in the admin")
    else:
        version = ModelVersion.objects.get(id=version_id)
    with _lock:
        if version.id not in _cache:
            folder = Path(settings.MEDIA_ROOT) / version.artifact
            _cache[version.id] = (load(folder), np.load(folder / "item_ids.npy"))
            while len(_cache) > KEPT_VERSIONS:
                _cache.popitem(last=False)
        _cache.move_to_end(version.id)
        model, item_ids = _cache[version.id]
    return ServedModel(version, model, item_ids)


def serve_chunks(served, *, customer_ids, items=ItemChoice.BOTH, chunk=CHUNK, now=None):
    """Yield a ServedChunk per `chunk` customers, in the order given: probabilities, showable mask, reasons.

    ``items``: an ItemChoice, which items may be shown (bought before, never bought, or both). ``now``
    (a datetime, the shop's clock of a batch's generation): when a basket-mode model scores, its repeat
    features (days since, how due ...) are computed at :func:`reference_time` of it; without it, at the
    model's own reference time (the midnight after the newest purchase it was fitted on). A basket-mode
    model scores each customer's purchases grouped into orders; any other model their item events.
    """
    items = ItemChoice(items)
    contexts = {}
    at = reference_time(now) if served.basket_mode and now is not None else None

    def from_database(size):
        for start in range(0, len(customer_ids), size):
            part = [int(c) for c in customer_ids[start : start + size]]
            if served.basket_mode:  # the bought mask's purchases come with the orders, from the same read
                contexts["bought"] = {}
                histories, timestamps, orders = purchase_orders_for(
                    customer_ids=part, item_ids=served.item_ids, bought=contexts["bought"]
                )
                contexts["chunk"] = {"timestamps": timestamps, "orders": orders}
            else:
                contexts["bought"] = None
                histories, event_types, timestamps = histories_for(customer_ids=part, item_ids=served.item_ids)
                contexts["chunk"] = {"event_types": event_types, "timestamps": timestamps}
            yield part, histories, contexts["chunk"]

    def score(histories, **context):
        if at is not None:
            context["now"] = at
        return served.model.predict_proba(histories, **context)

    # No hide for scored_chunks: what may be shown is built here as it is kept (a (n, n_items) mask of 50 MB at
    # 100,000 items, not inverted twice on the way)
    for scored in scored_chunks(score, from_database(chunk)):
        proba = np.asarray(scored.scores, dtype=np.float32)
        bought = bought_mask(served, customer_ids=scored.key, purchases=contexts["bought"])
        showable = showable_mask(served, customer_ids=scored.key, items=items, bought=bought)
        yield ServedChunk(served, scored.key, scored.histories, proba, showable, bought, contexts["chunk"], at)


def bought_mask(served, *, customer_ids, purchases=None):
    """(n, n_items) bool over served.item_ids: the items each customer bought before. ``purchases``: what
    purchased_items gives for these customers, when the caller read it already."""
    mask = np.zeros((len(customer_ids), len(served.item_ids)), dtype=bool)
    purchases = purchased_items(customer_ids=customer_ids) if purchases is None else purchases
    bought = [purchases[customer_id] for customer_id in customer_ids]
    lengths = np.fromiter(map(len, bought), np.int64, count=len(bought))
    items = np.fromiter(chain.from_iterable(bought), np.int64, count=int(lengths.sum()))
    rows, columns = np.repeat(np.arange(len(bought)), lengths), served.columns_of(items)
    known = columns >= 0  # an item bought but not in the model's catalogue has no column
    mask[rows[known], columns[known]] = True
    return mask


def showable_mask(served, *, customer_ids, items=ItemChoice.BOTH, bought=None):
    """(n, n_items) bool over served.item_ids: what each customer may be shown (module docstring).

    ``bought``: the customers' :func:`bought_mask`, when the caller has it already. Where every row is the
    same (both kinds of item, and nobody said "not interested"), a read-only view of one row: the (n, n_items)
    copy cost a generation more than its other masks (fresh pages of 50 MB at 100,000 items, every chunk).
    """
    rejected = not_interested_masks(customer_ids=customer_ids, served=served)
    if items == ItemChoice.BOTH and not rejected:
        return np.broadcast_to(served.usable, (len(customer_ids), len(served.usable)))
    if items == ItemChoice.BOTH:
        showable = np.repeat(served.usable[None, :], len(customer_ids), axis=0)
    else:  # one new array: bought (or not) and usable
        bought = bought_mask(served, customer_ids=customer_ids) if bought is None else bought
        showable = bought & served.usable if items == ItemChoice.BUY_AGAIN else ~bought
        if items != ItemChoice.BUY_AGAIN:
            showable &= served.usable
    for row, customer_id in enumerate(customer_ids):
        if customer_id in rejected:
            showable[row] &= ~rejected[customer_id]
    return showable


def not_interested_masks(*, customer_ids, served):
    """Per customer with any "not interested" event, a mask over served.item_ids, True where hidden.

    Hidden: every item they said it of, and every item of a category path (and of the paths below
    it) once they said it of FEEDBACK_CATEGORY_AFTER different items of that path. The events are the
    shop's (type not_interested), whether our message links or the shop's own API recorded them.
    """
    rows = (
        Event.objects.filter(customer_id__in=list(customer_ids), type=EventType.NOT_INTERESTED, item__isnull=False)
        .values_list("customer_id", "item_id", "item__category_path")
        .distinct()
    )
    rejected, per_category = {}, {}
    for customer_id, item_id, path in rows:
        rejected.setdefault(customer_id, set()).add(item_id)
        if path:
            per_category.setdefault((customer_id, path), set()).add(item_id)
    paths = {key for key, items in per_category.items() if len(items) >= settings.FEEDBACK_CATEGORY_AFTER}
    in_category = _columns_by_category({path for _customer, path in paths}, served.column)
    masks = {}
    for customer_id, items in rejected.items():
        mask = np.zeros(len(served.item_ids), dtype=bool)
        mask[[served.column[i] for i in items if i in served.column]] = True
        masks[customer_id] = mask
    for customer_id, path in paths:
        masks[customer_id][in_category[path]] = True
    return masks


def _columns_by_category(paths, column):
    """{path: columns of the items whose category path is `path` or below it}."""
    out = {path: [] for path in paths}
    if not paths:
        return out
    match = Q()
    for path in paths:
        match |= Q(category_path=path) | Q(category_path__startswith=f"{path} > ")
    for item_id, item_path in Item.objects.filter(match).values_list("id", "category_path"):
        for path in paths:
            if item_id in column and (item_path == path or item_path.startswith(f"{path} > ")):
                out[path].append(column[item_id])
    return out
