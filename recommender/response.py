"""The response model on the Django side: reading the shop into recommender.ml.response's arrays, training
the model beside a model version, and predicting p(response) for customers and promotions' item sets.

The model, its features and its backtests are Django-free (recommender/ml/response/); this module only
reads the database and the artifact. See docs/ARCHITECTURE.md, "The response model".
"""

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import connection
from threadpoolctl import threadpool_limits

from recommender.interactions import rows_in_batches
from recommender.ml.response import Purchases, ResponseModel, Shop, response_model_fit
from recommender.ml.response.features import HISTORY_DAYS, unique_pairs
from recommender.ml.response.model import level_shifted
from recommender.ml.response.training import level_customers, set_level_shifts
from shop.models import Customer, EventType, ExternalCampaign, Item

log = logging.getLogger(__name__)
DAY = 86400.0
ARTIFACT = "response.joblib"  # in the model version's artifact folder, beside the recommender
GROUP_LEVELS = 2  # an item's category for the features: the first two levels of its path ("GROCERY > COLD CEREAL")
TRAIN_SETS = 30  # the categories a version's response model learns from: the most bought ones
MIN_CUSTOMERS = 20  # fewer buyers than this before the cut-off: no response model (generation keeps its proxy)


@dataclass
class ShopData:
    """The shop as recommender.ml.response reads it, with the database ids behind each index."""

    shop: Shop
    customer_ids: np.ndarray  # database id per customer index, ascending
    item_ids: np.ndarray  # database id per item index
    group_names: list  # category name per item group code
    last_day: float  # the day of the latest purchase

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


def shop_data_load(*, until=None, since=None):
    """Every item purchase (before ``until``, from ``since``), items' categories and customers' demographics."""
    customer_col, item_col, seconds, value = _purchase_rows(until=until, since=since)
    customer_db, customer = np.unique(customer_col.astype(np.int64), return_inverse=True)
    del customer_col
    # In customer then time order: the features' distinct (customer, day) pairs are then already sorted, and
    # taking them is one pass instead of a sort of a year's purchases for every item set (the same numbers).
    # Each column is reordered in turn, so that one column's copy at a time is alive beside the log.
    order = np.lexsort((seconds, customer))
    customer = customer[order]
    item_col = item_col[order]
    seconds = seconds[order]
    value = value[order]
    del order
    item_db = np.array(sorted(Item.objects.values_list("id", flat=True)), np.int64)
    item = np.searchsorted(item_db, item_col.astype(np.int64))
    del item_col
    last_day = float(seconds.max() / DAY) if len(seconds) else 0.0
    seconds /= DAY  # now days, in place
    purchases = Purchases.of(customer, item, seconds, value, n_customers=len(customer_db), n_items=len(item_db))
    item_group, group_names = _item_groups(item_db)
    demographics, names = _demographics(customer_db)
    return ShopData(
        shop=Shop(purchases, item_group, demographics, names),
        customer_ids=customer_db,
        item_ids=item_db,
        group_names=group_names,
        last_day=last_day,
    )


def _purchase_rows(*, until, since):
    """(customer id, item id, seconds since the epoch, value) of every purchase with an item, as four float64
    columns (ids below 2**53 are exact)."""
    epoch = (
        "EXTRACT(EPOCH FROM occurred_at)::float8"
        if connection.vendor == "postgresql"
        else "CAST(strftime('%%s', occurred_at) AS REAL)"
    )
    sql = [f"SELECT customer_id, item_id, {epoch}, COALESCE(value, 0) FROM shop_event"]
    sql.append("WHERE type = %s AND item_id IS NOT NULL")
    params = [EventType.PURCHASE.value]
    if until is not None:
        sql.append("AND occurred_at < %s")
        params.append(until)
    if since is not None:
        sql.append("AND occurred_at >= %s")
        params.append(since)
    # Streamed through a server-side cursor, a batch of tuples at a time into float64 columns: a year of a large
    # shop's purchases (20M at issue 15's scale) as Python tuples would be gigabytes in every worker; each
    # column is joined on its own, so the blocks and the joined log are alive together one column at a time.
    columns = [[], [], [], []]
    for rows in rows_in_batches(" ".join(sql), params):
        block = np.array(rows, dtype=np.float64).reshape(-1, 4)
        for k in range(4):
            columns[k].append(block[:, k].copy())
    for k in range(4):
        columns[k] = np.concatenate(columns[k]) if columns[k] else np.zeros(0)
    return columns


def _item_groups(item_db):
    paths = dict(Item.objects.values_list("id", "category_path"))
    names, codes = {}, np.full(len(item_db), -1, np.int64)
    for n, item_id in enumerate(item_db.tolist()):
        path = " > ".join(part.strip() for part in (paths.get(item_id) or "").split(">")[:GROUP_LEVELS] if part.strip())
        if path:
            codes[n] = names.setdefault(path, len(names))
    return codes, list(names)


def _demographics(customer_db, max_keys=20):
    """Demographics as numbers: a number stays one; a text becomes its rank among the key's values (the
    trees only split on order; e.g. "19-24" < "25-34" < "35-44"). Unknown is NaN."""
    stored = dict(Customer.objects.filter(id__in=customer_db.tolist()).values_list("id", "demographics"))
    keys = sorted({k for d in stored.values() for k in (d or {})})[:max_keys]
    matrix = np.full((len(customer_db), len(keys)), np.nan)
    for k, key in enumerate(keys):
        values = [(stored.get(int(c)) or {}).get(key) for c in customer_db]
        texts = sorted({_sort_key(v) for v in values if v not in (None, "") and _number(v) is None})
        rank = {t: r for r, t in enumerate(texts)}
        for n, value in enumerate(values):
            if value in (None, ""):
                continue
            number = _number(value)
            matrix[n, k] = number if number is not None else rank[_sort_key(value)]
    return matrix, tuple(re.sub(r"\W+", "_", k) for k in keys)


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
    model.save(folder / ARTIFACT)
    return {**report, "sets": len(item_sets), "days": days, "cutoff": cutoff}


class ResponsePredictor:
    """A version's response model at the shop's present: p(response) for customers x item sets (by item id)."""

    def __init__(self, model, data, cutoff):
        self.model, self.data, self.cutoff = model, data, cutoff
        self.maker = data.shop.at(cutoff, settings.MEASUREMENT_DAYS)
        self._level_makers = {}  # days -> the features at cutoff - days, for every set's level shift
        self._cache = {}

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
        history = HISTORY_DAYS + settings.MEASUREMENT_DAYS + 1
        data = shop_data_load(until=now, since=now - timedelta(days=history))
        return cls(model, data, float(now.timestamp() / DAY))

    def predict(self, customer_ids, item_ids):
        """p(response) per customer (database ids) for one item set (database item ids).

        The set's columns of features are computed once for every customer (a pass over the purchase log) and
        kept with its level shift; each call then predicts for its own customers only (a batch asks once per
        chunk of its audience, and a worker pays for the chunks it takes, not for the shop)."""
        key = frozenset(int(i) for i in item_ids)
        if key not in self._cache:
            self._cache[key] = self._set(key)
        columns, shift, never = self._cache[key]
        index = self.data.customer_index(customer_ids)
        known = index >= 0
        p = np.full(len(index), never)
        if known.any():
            with _one_thread():
                p[known] = level_shifted(self.model.predict_proba(self.maker.rows(columns, index[known])), shift)
        return p

    def _set(self, item_ids):
        """(the set's feature columns, its level shift, the probability of a customer who never bought)."""
        if not len(self.data.customer_ids):  # no purchase in the year read: nobody to learn a level from
            return ({}, {}), 0.0, 0.0
        mask = self.data.item_mask(item_ids)
        columns = self.maker.set_columns(mask)
        # the set's own level, from the last window before now (the backtest's set_window_predict does the same)
        days = settings.MEASUREMENT_DAYS
        if days not in self._level_makers:  # read once for the batch's item sets, not once each
            maker = self.data.shop.at(self.cutoff - days, days)
            self._level_makers[days] = (maker, level_customers(self.data.shop, self.cutoff - days))
        maker, sample = self._level_makers[days]
        with _one_thread():
            shift = set_level_shifts(
                self.model,
                self.data.shop,
                cutoff=self.cutoff,
                item_sets={"set": mask},
                days=days,
                maker=maker,
                customers=sample,
            )["set"]
            # a customer with no purchase in the last year: the features of one who never bought
            one = _never_bought(self.maker.rows(columns, np.zeros(1, np.int64)))
            never = float(level_shifted(self.model.predict_proba(one), shift)[0])
        return columns, shift, never


def _one_thread():
    """One OpenMP thread for the trees: a generation worker shares its host with other workers, and there the
    threads of each predict spin against the others' (measured 53 ms one thread against 136 to 1,287 ms with
    two, for 10,000 rows on the loaded 2-core machine); the same probabilities either way."""
    return threadpool_limits(limits=1, user_api="openmp")


def _never_bought(X):
    """A row of features for a customer with no purchase at all (set-wide columns kept)."""
    from recommender.ml.response.features import NEVER

    row = X.copy()
    for column in row.columns:
        if column.endswith("_days_since"):
            row[column] = NEVER
        elif column.startswith(("set_days_", "group_days_", "all_days_", "set_spend", "all_spend", "set_items")):
            row[column] = 0.0
        elif column in ("set_share_365", "set_share_90", "tenure_days"):
            row[column] = 0.0
        elif column in ("set_interval", "all_interval", "set_due") or column.startswith("demo_"):
            row[column] = np.nan
    return row


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
