"""The response model on the Django side: reading the shop into recommender.ml.response's arrays, training
the model beside a model version, and predicting p(response) for customers and promotions' item sets.

The model, its features and its backtests are Django-free (recommender/ml/response/); this module only
reads the database and the artifact. See docs/ARCHITECTURE.md, "The response model".
"""

import functools
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import connection
from threadpoolctl import ThreadpoolController

from recommender.interactions import _where, copy_columns
from recommender.ml.response import Purchases, ResponseModel, Shop, response_model_fit
from recommender.ml.response.features import HISTORY_DAYS, unique_pairs
from recommender.ml.response.model import level_shifted
from recommender.ml.response.training import LEVEL_CUSTOMERS, customers_sample, set_level_shifts
from shop.models import Customer, EventType, ExternalCampaign, Item

log = logging.getLogger(__name__)
DAY = 86400.0
ARTIFACT = "response.joblib"  # in the model version's artifact folder, beside the recommender
GROUP_LEVELS = 2  # an item's category for the features: the first two levels of its path ("GROCERY > COLD CEREAL")
TRAIN_SETS = 30  # the categories a version's response model learns from: the most bought ones
SQLITE_IDS = 10_000  # customer ids a query names on SQLite (embedded mode), well inside its 32,766 parameters
MIN_CUSTOMERS = 20  # fewer buyers than this before the cut-off: no response model (generation keeps its proxy)


@dataclass
class ShopData:
    """The shop as recommender.ml.response reads it, with the database ids behind each index."""

    shop: Shop
    customer_ids: np.ndarray  # database id per customer index, ascending
    item_ids: np.ndarray  # database id per item index
    group_names: list  # category name per item group code
    last_day: float  # the day of the latest purchase
    demography: "Demography" = None  # how the demographics became numbers

    def customer_index(self, ids):
        """Indices of these database ids (-1 for a customer with no row here). A binary search in the sorted
        ids: generation asks per chunk of 500, and a dict of the whole shop each time cost more than the chunk."""
        ids = np.fromiter((int(c) for c in ids), np.int64)
        if not len(self.customer_ids):
            return np.full(len(ids), -1, np.int64)
        at = np.searchsorted(self.customer_ids, ids).clip(max=len(self.customer_ids) - 1)
        return np.where(self.customer_ids[at] == ids, at, -1)

    def item_mask(self, item_ids):
        """Bool mask over the items for a collection of database item ids."""
        return np.isin(self.item_ids, np.asarray(list(item_ids), np.int64))

    def category_masks(self, prefixes=None, top=20, before=None):
        """{category name: item mask}: the given path prefixes, else the ``top`` categories bought by the
        most customers (before the day ``before``, when given)."""
        if prefixes:
            return {prefix: self._prefix_mask(prefix) for prefix in prefixes}
        p = self.shop.purchases
        keep = p.day < before if before is not None else np.ones(len(p.day), bool)
        groups = self.shop.item_group[p.item[keep]]
        known = groups >= 0
        group_of_pair, _customer = unique_pairs(groups[known], p.customer[keep][known])
        buyers = np.bincount(group_of_pair, minlength=len(self.group_names))
        chosen = np.argsort(-buyers, kind="stable")[:top]
        return {self.group_names[g]: self.shop.item_group == g for g in chosen if buyers[g] > 0}

    def _prefix_mask(self, prefix):
        paths = dict(Item.objects.filter(id__in=self.item_ids.tolist()).values_list("id", "category_path"))
        wanted = prefix.strip()
        path_of = [paths.get(int(i)) or "" for i in self.item_ids]
        return np.array([path == wanted or path.startswith(wanted + " >") for path in path_of], bool)


def shop_data_load(*, until=None, since=None, customer_ids=None, catalogue=None, demography=None):
    """Every item purchase (before ``until``, from ``since``; of ``customer_ids`` only, when given), items'
    categories and customers' demographics. ``catalogue`` and ``demography``: the items and the encoding of
    demographics read once for many loads (ResponsePredictor's chunks); else read here, the encoding from
    the customers loaded."""
    customer_col, item_col, seconds, value = _purchase_rows(until=until, since=since, customer_ids=customer_ids)
    catalogue = catalogue or Catalogue.load()
    item = np.searchsorted(catalogue.item_ids, item_col.astype(np.int64)).clip(max=max(len(catalogue.item_ids) - 1, 0))
    known = catalogue.item_ids[item] == item_col if len(catalogue.item_ids) else np.zeros(len(item), bool)
    if not known.all():  # an item created after the catalogue was read (a worker keeps one): not an input yet
        customer_col, item, seconds, value = (column[known] for column in (customer_col, item, seconds, value))
    del item_col, known
    customer_db, customer = np.unique(customer_col.astype(np.int64), return_inverse=True)
    del customer_col
    # In customer then time order: the features' distinct (customer, day) pairs are then already sorted, and
    # taking them is one pass instead of a sort of a year's purchases for every item set (the same numbers).
    # Each column is reordered in turn, so that one column's copy at a time is alive beside the log.
    order = np.lexsort((seconds, customer))
    customer = customer[order]
    item = item[order]
    seconds = seconds[order]
    value = value[order]
    del order
    last_day = float(seconds.max() / DAY) if len(seconds) else 0.0
    seconds /= DAY  # now days, in place
    purchases = Purchases.of(
        customer, item, seconds, value, n_customers=len(customer_db), n_items=len(catalogue.item_ids)
    )
    stored = _stored_demographics(customer_db)
    demography = demography or Demography.of(stored.values())
    return ShopData(
        shop=Shop(purchases, catalogue.item_group, demography.matrix(stored, customer_db), demography.names),
        customer_ids=customer_db,
        item_ids=catalogue.item_ids,
        group_names=catalogue.group_names,
        last_day=last_day,
        demography=demography,
    )


def _purchase_rows(*, until, since, customer_ids=None):
    """(customer id, item id, seconds since the epoch, value) of every purchase with an item (of these
    customers, when given), as four float64 columns (ids below 2**53 are exact)."""
    postgres = connection.vendor == "postgresql"
    epoch = "EXTRACT(EPOCH FROM occurred_at)::float8" if postgres else "CAST(strftime('%%s', occurred_at) AS REAL)"
    cast = "::float8" if postgres else ""
    if customer_ids is not None and not postgres and len(customer_ids) > SQLITE_IDS:  # its bound on parameters
        parts = [
            _purchase_rows(until=until, since=since, customer_ids=customer_ids[start : start + SQLITE_IDS])
            for start in range(0, len(customer_ids), SQLITE_IDS)
        ]
        return [np.concatenate(column) for column in zip(*parts)]
    where, params = _where(types=[EventType.PURCHASE.value], customer_ids=customer_ids, until=until, since=since)
    sql = f"SELECT customer_id{cast}, item_id{cast}, {epoch}, COALESCE(value, 0){cast} FROM shop_event {where}"
    # COPY's binary rows into float64 columns (recommender.interactions.copy_columns): no Python tuple per
    # purchase, for a chunk's customers as for a year of a large shop (20M purchases at issue 15's scale).
    return copy_columns(sql, params, [np.float64] * 4)


@dataclass
class Catalogue:
    """The shop's items as the features read them: database ids (ascending) and each one's category code."""

    item_ids: np.ndarray
    item_group: np.ndarray  # per item: its category's code in group_names, -1 for none
    group_names: list

    @classmethod
    def load(cls):
        item_ids = np.array(sorted(Item.objects.values_list("id", flat=True)), np.int64)
        item_group, group_names = _item_groups(item_ids)
        return cls(item_ids, item_group, group_names)

    def item_mask(self, item_ids):
        """Bool mask over the items for a collection of database item ids."""
        return np.isin(self.item_ids, np.asarray(list(item_ids), np.int64))


def _item_groups(item_db):
    paths = dict(Item.objects.values_list("id", "category_path"))
    names, codes = {}, np.full(len(item_db), -1, np.int64)
    for n, item_id in enumerate(item_db.tolist()):
        path = " > ".join(part.strip() for part in (paths.get(item_id) or "").split(">")[:GROUP_LEVELS] if part.strip())
        if path:
            codes[n] = names.setdefault(path, len(names))
    return codes, list(names)


@dataclass
class Demography:
    """How customers' demographics become numbers: a number stays one; a text becomes its rank among the
    key's values (the trees only split on order; e.g. "19-24" < "25-34" < "35-44"). Unknown is NaN.

    The encoding is the model's: a version's response model keeps the one of the customers it learned from
    (response_model_train), so production feeds it the numbers it was trained on, whichever customers a
    chunk holds."""

    keys: list  # at most MAX_KEYS, sorted
    ranks: list  # per key: {sort key of a text value: its rank}

    @classmethod
    def of(cls, stored):
        """The encoding of these customers' demographics (dicts, or None)."""
        stored = [d if isinstance(d, dict) else {} for d in stored]
        keys = sorted({k for d in stored for k in d})[:MAX_KEYS]
        ranks = []
        for key in keys:
            texts = sorted({_sort_key(v) for d in stored if _is_text(v := d.get(key))})
            ranks.append({t: r for r, t in enumerate(texts)})
        return cls(keys, ranks)

    @property
    def names(self):
        return tuple(re.sub(r"\W+", "_", k) for k in self.keys)

    def matrix(self, stored, customer_db):
        """(customers, keys) float matrix of ``stored`` ({customer id: demographics}) in customer_db's order."""
        matrix = np.full((len(customer_db), len(self.keys)), np.nan)
        rows = [stored.get(int(c)) for c in customer_db]
        for k, (key, rank) in enumerate(zip(self.keys, self.ranks)):
            for n, d in enumerate(rows):
                value = d.get(key) if isinstance(d, dict) else None
                if value in (None, ""):
                    continue
                number = _number(value)
                matrix[n, k] = number if number is not None else rank.get(_sort_key(value), np.nan)
        return matrix


MAX_KEYS = 20  # demographic keys the response model reads


def _stored_demographics(customer_db):
    """{customer id: demographics} of these customers, a query per 10,000 ids."""
    stored, ids = {}, customer_db.tolist()
    for start in range(0, len(ids), 10_000):
        stored.update(Customer.objects.filter(id__in=ids[start : start + 10_000]).values_list("id", "demographics"))
    return stored


def _is_text(value):
    return value not in (None, "") and _number(value) is None


def _number(value):
    if isinstance(value, bool):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _sort_key(value):
    """Sort texts by their first number when they have one ("5+" after "2"), else alphabetically."""
    text = str(value)
    match = re.search(r"\d+", text)
    return (int(match.group()) if match else 10**9, text)


# --- a model version's response model ----------------------------------------------------------------


def response_model_train(*, folder, until, days=None, windows=6):
    """Train the response model on the shop's purchases before ``until`` and write it to ``folder``.

    Item sets are the most bought categories (what a promotion's eligibility usually names); the label of
    a window is a purchase in the set within MEASUREMENT_DAYS. Returns the report stored on the version
    (train/calibration windows and rates), or {"skipped": why} when the shop is too small to learn from."""
    days = days or settings.MEASUREMENT_DAYS
    data = shop_data_load(until=until)
    # The shop's clock, not ours: a historical data set (the Complete Journey ends in 2018) learns from its
    # last weeks. The day of the latest purchase is left out, as it may be partial.
    cutoff = min(float(until.timestamp() / DAY), float(np.floor(data.last_day)))
    first_day = float(data.shop.purchases.day.min()) if len(data.shop.purchases.day) else cutoff
    windows = min(windows, int((cutoff - first_day) // days) - 2)
    if windows < 1 or len(data.shop.buyers_before(cutoff - days)) < MIN_CUSTOMERS:
        why = f"too little history: {windows + 2} windows of {days} days, or fewer than {MIN_CUSTOMERS} buyers"
        return {"skipped": why}
    item_sets = data.category_masks(top=TRAIN_SETS, before=cutoff)
    try:
        model, report = response_model_fit(data.shop, cutoff=cutoff, item_sets=item_sets, days=days, windows=windows)
    except ValueError as error:  # e.g. a window with no responder at all
        return {"skipped": str(error)}
    # the encoding of demographics it learned, kept with it (plain data): production's chunks encode alike
    model.demography_ = {"keys": data.demography.keys, "ranks": data.demography.ranks}
    model.save(folder / ARTIFACT)
    return {**report, "sets": len(item_sets), "days": days, "cutoff": cutoff}


@dataclass
class Chunk:
    """A chunk of customers as ResponsePredictor reads it: their purchases, the feature maker at the present
    and each item set's feature columns (computed once for the chunk's predict calls)."""

    customer_ids: np.ndarray  # ascending
    data: ShopData
    maker: object  # recommender.ml.response.CutoffFeatures
    columns: dict  # item mask's bytes -> the set's columns


class ResponsePredictor:
    """A version's response model at the shop's present: p(response) for customers x item sets (by item id).

    It reads the shop a chunk of customers at a time (``prepare``; generation asks per chunk of its
    audience), so a worker holds and pays for its chunks' purchases, not the shop's year: at a million
    customers the whole log took 90 s and 3 GB in every worker. Beside a chunk it keeps what a chunk cannot
    give, read once: the items, the model's encoding of demographics, the shop's counts of a set's buyers
    (ShopCounts) and, per item set, its level shift, measured on a sample of at most LEVEL_CUSTOMERS buyers
    whose purchases are read once. The numbers are those of the backtest on the whole log at the same
    cut-off (tests/recommender/test_response_production.py)."""

    def __init__(self, model, *, now, since, catalogue, demography):
        self.model, self.now, self.since = model, now, since
        self.cutoff = float(now.timestamp() / DAY)
        self.days = settings.MEASUREMENT_DAYS
        self.catalogue, self.demography = catalogue, demography
        self.counts = None  # ShopCounts, read at the first set
        self._sets = {}  # frozenset of item ids -> (mask, level shift, p of a customer who never bought)
        self._set_of_bytes = {}  # the bytes of an array of item ids asked for -> its frozenset
        self._level = None  # the level window's (shop, maker, customers), read at the first set
        self.chunk = None  # the prepared chunk (Chunk)

    @classmethod
    def of_version(cls, version, *, now=None):
        """The version's response model, or None when it has none (trained before it existed, or skipped).
        ``now``: the shop's clock (campaigns.audiences.shop_clock), so a historical shop is scored at its end."""
        if not version.artifact:
            return None
        path = Path(settings.MEDIA_ROOT) / version.artifact / ARTIFACT
        if not path.exists():
            return None
        model = ResponseModel.load(path)
        now = now or datetime.now(UTC)
        # The features read HISTORY_DAYS before a cut-off, and each set's level shift reads the features at
        # now - MEASUREMENT_DAYS: that much of the log gives the numbers a backtest on the whole log gives.
        since = now - timedelta(days=HISTORY_DAYS + settings.MEASUREMENT_DAYS + 1)
        kept = getattr(model, "demography_", None)
        if kept is not None:
            demography = Demography(**kept)
        else:  # a model saved before it kept its encoding: the one of every customer
            demography = Demography.of(Customer.objects.values_list("demographics", flat=True).iterator(10_000))
        return cls(model, now=now, since=since, catalogue=Catalogue.load(), demography=demography)

    def prepare(self, customer_ids):
        """Read these customers' purchases for the ``predict`` calls that follow on any of them."""
        ids = np.unique(np.fromiter((int(c) for c in customer_ids), np.int64))
        data = shop_data_load(
            until=self.now, since=self.since, customer_ids=ids, catalogue=self.catalogue, demography=self.demography
        )
        maker = data.shop.at(self.cutoff, self.days, popularity=self._counts().popularity(self.cutoff))
        self.chunk = chunk = Chunk(ids, data, maker, {})
        return chunk

    def predict(self, customer_ids, item_ids):
        """p(response) per customer (database ids) for one item set (database item ids): the calibrated
        probability moved by the set's level shift; a customer with no purchase in the year read gets the
        probability of one who never bought. Customers outside the prepared chunk are read first."""
        mask, shift, never = self._set(item_ids)
        index, columns, maker = self._rows_of(customer_ids, mask)
        known = index >= 0
        p = np.full(len(index), never)
        if known.any():
            with _one_thread():
                p[known] = level_shifted(self.model.predict_proba(maker.rows(columns, index[known])), shift)
        return p

    def features(self, customer_ids, item_ids):
        """The model's features of these customers for the set, as ``predict`` reads them (those with a
        purchase in the year read; the others are the never-bought row)."""
        mask, _shift, _never = self._set(item_ids)
        index, columns, maker = self._rows_of(customer_ids, mask)
        return maker.rows(columns, index[index >= 0])

    def _rows_of(self, customer_ids, mask):
        ids = np.fromiter((int(c) for c in customer_ids), np.int64)
        chunk, key = self.chunk, mask.tobytes()
        if chunk is None or not np.isin(ids, chunk.customer_ids).all():
            chunk = self.prepare(ids)
        if key not in chunk.columns:
            chunk.columns[key] = chunk.maker.set_columns(mask)
        return chunk.data.customer_index(ids), chunk.columns[key], chunk.maker

    def _set(self, item_ids):
        """(the set's item mask, its level shift, the probability of a customer who never bought)."""
        # generation asks with the same array of ids for every sub-chunk: its bytes find the set at once (a
        # frozenset of 100,000 ids cost 9 ms a call); the same set in another order or type is found by value
        raw = np.asarray(item_ids, np.int64).tobytes()
        if raw in self._set_of_bytes:
            return self._sets[self._set_of_bytes[raw]]
        key = frozenset(int(i) for i in item_ids)
        self._set_of_bytes[raw] = key
        if key in self._sets:
            return self._sets[key]
        mask = self.catalogue.item_mask(key)
        level = self._level_window()
        if level is None:  # no purchase before the level window: nothing to learn a level from
            self._sets[key] = (mask, 0.0, 0.0)
            return self._sets[key]
        shop, maker, customers = level
        with _one_thread():
            # the set's own level, from the last window before now (the backtest's set_window_predict does the same)
            shift = set_level_shifts(
                self.model,
                shop,
                cutoff=self.cutoff,
                item_sets={"set": mask},
                days=self.days,
                maker=maker,
                customers=customers,
            )["set"]
            never = float(level_shifted(self.model.predict_proba(self._never_bought(mask)), shift)[0])
        self._sets[key] = (mask, shift, never)
        return self._sets[key]

    def _level_window(self):
        """The level shifts' window, [now - MEASUREMENT_DAYS, now): the shop of its sample of buyers (the
        backtest's level_customers, drawn from the same ascending buyers), its feature maker and customers."""
        if self._level is None:
            start = self.cutoff - self.days
            buyers = _buyers(since=self.since, until=_moment(start))
            if not len(buyers):
                self._level = False
            else:
                sample = customers_sample(buyers, LEVEL_CUSTOMERS, seed=int(np.floor(start)))
                data = shop_data_load(
                    until=self.now,
                    since=self.since,
                    customer_ids=sample,
                    catalogue=self.catalogue,
                    demography=self.demography,
                )
                maker = data.shop.at(start, self.days, popularity=self._counts().popularity(start))
                self._level = (data.shop, maker, data.customer_index(sample))
        return self._level or None

    def _counts(self):
        if self.counts is None:
            # the 90 days before the level window's cut-off, to now: both cut-offs' counts
            since = _moment(np.floor(self.cutoff - self.days - max(SET_BUYER_DAYS)))
            self.counts = ShopCounts.load(since=since, until=self.now, catalogue=self.catalogue)
        return self.counts

    def _never_bought(self, mask):
        """The features of a customer with no purchase: those of an empty log, beside the set's shop-wide ones."""
        empty = Purchases.of(
            np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), n_customers=1, n_items=len(mask)
        )
        unknown = np.full((1, len(self.demography.keys)), np.nan)
        shop = Shop(empty, self.catalogue.item_group, unknown, self.demography.names)
        maker = shop.at(self.cutoff, self.days, popularity=self._counts().popularity(self.cutoff))
        return maker.features(mask, np.zeros(1, np.int64))


class ShopCounts:
    """What the features count over the whole shop, which a chunk's log cannot give: per cut-off, a set's
    buyers in its last 14, 28 and 90 days over the customers active in its last 90 (CutoffFeatures'
    _set_popularity on the whole log, the same numbers), from one read of those days' purchases."""

    def __init__(self, customer, item, day, n_customers):
        self.customer, self.item, self.day, self.n_customers = customer, item, day, n_customers
        self._kept = {}

    @classmethod
    def load(cls, *, since, until, catalogue):
        customer, item, seconds, _value = _purchase_rows(until=until, since=since)
        customer = np.unique(customer, return_inverse=True)[1].astype(np.int64)
        index = np.searchsorted(catalogue.item_ids, item.astype(np.int64)).clip(max=max(len(catalogue.item_ids) - 1, 0))
        known = catalogue.item_ids[index] == item if len(catalogue.item_ids) else np.zeros(len(index), bool)
        return cls(customer[known], index[known], seconds[known] / DAY, int(customer.max(initial=-1)) + 1)

    def popularity(self, cutoff):
        """CutoffFeatures' ``popularity`` at this cut-off: item set (bool mask over the items) -> its counts."""

        def popularity(item_set):
            key = (cutoff, item_set.tobytes())
            if key not in self._kept:
                self._kept[key] = self._popularity(item_set, cutoff)
            return self._kept[key]

        return popularity

    def _popularity(self, item_set, cutoff):
        before = self.day < cutoff
        active = max(self._customers(before & (self.day >= np.floor(cutoff - 90))), 1)
        in_set = before & np.asarray(item_set, bool)[self.item]
        out = {
            f"set_buyers_{w}": self._customers(in_set & (self.day >= np.floor(cutoff - w))) / active
            for w in SET_BUYER_DAYS
        }
        out["set_size_log"] = float(np.log1p(item_set.sum()))
        return out

    def _customers(self, keep):
        return int(np.count_nonzero(np.bincount(self.customer[keep], minlength=self.n_customers)))


SET_BUYER_DAYS = (14, 28, 90)  # CutoffFeatures._set_popularity's windows


def _buyers(*, since, until):
    """Database ids, ascending, of the customers with a purchase of an item in [since, until)."""
    where, params = _where(types=[EventType.PURCHASE.value], until=until, since=since)
    cast = "::int8" if connection.vendor == "postgresql" else ""
    return copy_columns(f"SELECT DISTINCT customer_id{cast} FROM shop_event {where} ORDER BY 1", params, [np.int64])[0]


def _moment(day):
    """The datetime of a day number (days since the Unix epoch, as the features count)."""
    return datetime.fromtimestamp(float(day) * DAY, UTC)


def _one_thread():
    """One OpenMP thread for the trees: a generation worker shares its host with other workers, and there the
    threads of each predict spin against the others' (measured 53 ms one thread against 136 to 1,287 ms with
    two, for 10,000 rows on the loaded 2-core machine); the same probabilities either way."""
    return _threadpools().limit(limits=1, user_api="openmp")


@functools.cache
def _threadpools():
    """The process's thread pools, found once: threadpool_limits looks for them at every call (4 ms, as
    long as the trees' predict for 500 customers)."""
    return ThreadpoolController()


def external_campaigns(data, *, source=None):
    """The shop's past coupon campaigns as recommender.ml.response.evaluation.Campaign rows, and every
    coupon redemption (customer, day, campaign) from the redemption events."""
    from recommender.ml.response.evaluation import Campaign

    redemptions = _redemption_rows(data)
    campaigns = []
    queryset = ExternalCampaign.objects.prefetch_related("coupons__items")
    if source:
        queryset = queryset.filter(source=source)
    for campaign in queryset:
        if campaign.start_date is None or campaign.end_date is None:
            continue
        targeted = data.customer_index(campaign.targeted.values_list("id", flat=True))
        targeted = np.unique(targeted[targeted >= 0])
        start = _day(campaign.start_date)
        end = _day(campaign.end_date) + 1
        during = (redemptions.campaign == campaign.external_id) & (redemptions.day >= start) & (redemptions.day < end)
        item_ids = {item.id for coupon in campaign.coupons.all() for item in coupon.items.all()}
        campaigns.append(
            Campaign(
                id=campaign.external_id,
                kind=campaign.campaign_type or "",
                start=start,
                end=end,
                targeted=targeted,
                items=data.item_mask(item_ids),
                redeemers=np.unique(redemptions.customer[during]),
            )
        )
    return campaigns, redemptions


def _day(date):
    return datetime(date.year, date.month, date.day, tzinfo=UTC).timestamp() / DAY


def _redemption_rows(data):
    from recommender.ml.response.evaluation import Redemptions
    from shop.models import Event

    rows = Event.objects.filter(type=EventType.COUPON_REDEMPTION)
    rows = rows.values_list("customer_id", "occurred_at", "attributes")
    customer, day, campaign = [], [], []
    index = {int(c): n for n, c in enumerate(data.customer_ids)}
    for customer_id, occurred_at, attributes in rows.iterator(chunk_size=5000):
        if customer_id not in index:
            continue
        customer.append(index[customer_id])
        day.append(occurred_at.timestamp() / DAY)
        campaign.append(str((attributes or {}).get("campaign_id", "")))
    return Redemptions(np.array(customer, np.int64), np.array(day), np.array(campaign, dtype=object))
