"""Reading the shop's events into the arrays recommender.ml trains on (selectors of the recommender).

The loaders stream: a server-side cursor (PostgreSQL; a plain one elsewhere) hands over ``FETCH_ROWS`` rows
at a time, each batch becomes NumPy columns at once and its Python tuples are dropped, and the per-customer
series come back as ``Ragged`` (recommender/ml/ragged.py: one flat array and offsets), not as Python lists
of arrays. At 20M events that is about 25 bytes an event while loading instead of the tuples' hundreds.
"""

from dataclasses import dataclass

import numpy as np
from django.db import connection, transaction
from psycopg import ClientCursor

from recommender.ml.baskets import order_numbers_by_customer
from recommender.ml.data import Split
from recommender.ml.ragged import Ragged
from shop.models import Event, EventType, Item

# Event types a recommender learns from, with their ids as model inputs (order is part of a saved model).
TRAINING_TYPES = [EventType.PURCHASE, EventType.CART, EventType.VIEW]
TYPE_IDS = {t.value: i for i, t in enumerate(TRAINING_TYPES)}
# Rows per round trip of the server-side cursor: 100,000 rows are a few MB of tuples at a time.
FETCH_ROWS = 100_000


@dataclass
class Interactions:
    customer_ids: np.ndarray  # database ids, one per history
    item_ids: np.ndarray  # database ids; item_ids[index] is the item behind model index `index`
    histories: Ragged  # per customer: item indices in time order
    event_types: Ragged  # per customer: TYPE_IDS of each event
    timestamps: Ragged  # per customer: seconds since the epoch

    @property
    def n_events(self):
        return len(self.histories.values)

    def item_index(self):
        return {int(item): index for index, item in enumerate(self.item_ids)}


def _epoch_sql():
    if connection.vendor == "postgresql":
        return "EXTRACT(EPOCH FROM occurred_at)::bigint"
    return "CAST(strftime('%%s', occurred_at) AS INTEGER)"


def _where(*, types, customer_ids=None, until=None, since=None):
    """The WHERE clause of item events of the given types, and its parameters."""
    sql = ["WHERE item_id IS NOT NULL", f"AND type IN ({', '.join(['%s'] * len(types))})"]
    params = list(types)
    if customer_ids is not None and connection.vendor == "postgresql":
        # one array parameter: a query text of 500 placeholders cost psycopg a parse per chunk (its cache
        # keeps 128 texts), 5 s of a batch of 100,000 customers
        sql.append("AND customer_id = ANY(%s)")
        params.append([int(c) for c in customer_ids])
    elif customer_ids is not None:
        sql.append(f"AND customer_id IN ({', '.join(['%s'] * len(customer_ids))})")
        params += [int(c) for c in customer_ids]
    if since is not None:
        sql.append("AND occurred_at >= %s")
        params.append(since)
    if until is not None:
        sql.append("AND occurred_at < %s")
        params.append(until)
    return " ".join(sql), params


def rows_in_batches(sql, params):
    """The query's rows, ``FETCH_ROWS`` tuples at a time, through a server-side cursor where there is one.

    Inside a transaction, so PostgreSQL's cursor needs no WITH HOLD (which would first copy the whole result).
    """
    with transaction.atomic(), connection.chunked_cursor() as cursor:
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(FETCH_ROWS):
            yield rows


# COPY's binary rows: a field count (int16), then per field its length (int32) and its bytes, big-endian.
COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
COPY_TYPES = {np.dtype(np.int64): ">i8", np.dtype(np.float64): ">f8"}
COPY_PARSE_BYTES = 1 << 24  # parse the stream every 16 MB of rows, so neither the bytes nor the rows pile up


def copy_columns(sql, params, dtypes):
    """The query's result as NumPy columns, one per dtype (int64 or float64), every value non-null.

    On PostgreSQL the rows come through ``COPY (query) TO STDOUT (FORMAT BINARY)``: fixed-width rows parsed by
    NumPy a block at a time, with no Python object per value. JIT compilation is off for the rest of the
    transaction. The query must give exactly these types (cast them: ``customer_id::int8``, ``...::float8``);
    a NULL or another width is an error, not a wrong number. Elsewhere (SQLite), the tuples of
    rows_in_batches."""
    dtypes = [np.dtype(d) for d in dtypes]
    if connection.vendor != "postgresql":
        parts = [[] for _ in dtypes]
        for rows in rows_in_batches(sql, params):
            for part, column, dtype in zip(parts, zip(*rows), dtypes):
                part.append(np.array(column, dtype))
        return [np.concatenate(part) if part else np.zeros(0, dtype) for part, dtype in zip(parts, dtypes)]
    fields = [("count", ">i2")]
    for k, dtype in enumerate(dtypes):
        fields += [(f"length{k}", ">i4"), (f"value{k}", COPY_TYPES[dtype])]
    row = np.dtype(fields)
    parts = [[] for _ in dtypes]

    def parse(buffer, final):
        n = len(buffer) // row.itemsize if not final else (len(buffer) - 2) // row.itemsize
        if final and (len(buffer) - 2) % row.itemsize or final and bytes(buffer[-2:]) != b"\xff\xff":
            raise ValueError("COPY's binary rows are not of the expected width (a NULL, or a column not cast)")
        rows = np.frombuffer(buffer, row, count=n)
        widths = [rows["count"] != len(dtypes)] + [rows[f"length{k}"] != 8 for k in range(len(dtypes))]
        if any(bad.any() for bad in widths):
            del rows
            raise ValueError("COPY's binary rows are not of the expected width (a NULL, or a column not cast)")
        for k, (part, dtype) in enumerate(zip(parts, dtypes)):
            part.append(rows[f"value{k}"].astype(dtype))
        del rows  # the view of the buffer, before the buffer lets its parsed rows go
        del buffer[: n * row.itemsize]

    connection.ensure_connection()
    raw = connection.connection
    query = ClientCursor(raw).mogrify(sql, params) if params else sql.replace("%%", "%")
    buffer, header = bytearray(), None
    with transaction.atomic(), raw.cursor() as cursor:
        # No JIT compilation for the rest of the transaction: for a chunk's 100,000 rows it took 0.9 s of 1.2
        # (generation's chunks have it off already, campaigns.services.generation._no_jit).
        cursor.execute("SET LOCAL jit = off")
        with cursor.copy(f"COPY ({query}) TO STDOUT (FORMAT BINARY)") as copy:
            for data in copy:
                buffer += data
                if header is None and len(buffer) >= 19:
                    if bytes(buffer[:11]) != COPY_SIGNATURE:
                        raise ValueError("not a COPY binary stream")
                    header = 19 + int.from_bytes(buffer[15:19], "big")
                if header is not None and len(buffer) >= header:
                    del buffer[:header]
                    header = 0
                if header == 0 and len(buffer) >= COPY_PARSE_BYTES:
                    parse(buffer, final=False)
    if header is None or header:
        raise ValueError("a COPY binary stream with no header")
    parse(buffer, final=True)
    return [np.concatenate(part) if part else np.zeros(0, dtype) for part, dtype in zip(parts, dtypes)]


def _columns(batches, dtypes):
    """Whole-result NumPy columns (one per dtype) from batches of integer rows; each batch's tuples go at once."""
    parts = [[] for _ in dtypes]
    for rows in batches:
        block = np.array(rows, dtype=np.int64).reshape(len(rows), len(dtypes))
        for part, column, dtype in zip(parts, block.T, dtypes):
            part.append(column.astype(dtype))
        del rows, block
    return [np.concatenate(part) if part else np.zeros(0, dtype) for part, dtype in zip(parts, dtypes)]


def _event_columns(*, customer_ids=None, until=None, since=None, types=None):
    """(customer_id, item_id, type id, epoch) columns of item events, per customer in time order.

    Events on an item the customer later said "not interested" in are left out (see _without_rejected).
    """
    types = list(types or TYPE_IDS)
    type_case = "CASE type " + " ".join(f"WHEN %s THEN {TYPE_IDS[t]}" for t in types) + " END"
    where, params = _where(types=types, customer_ids=customer_ids, until=until, since=since)
    sql = (
        f"SELECT customer_id, item_id, {type_case}, {_epoch_sql()} FROM shop_event {where} "
        "ORDER BY customer_id, occurred_at, id"
    )
    columns = _columns(rows_in_batches(sql, types + params), (np.int64, np.int64, np.int8, np.int64))
    keep = _not_rejected(columns, _rejections(customer_ids=customer_ids, until=until))
    return columns if keep is None else [column[keep] for column in columns]


def _rejections(*, customer_ids=None, until=None):
    """{(customer_id, item_id): epoch of the latest "not interested"} before `until`."""
    where, params = _where(types=[EventType.NOT_INTERESTED.value], customer_ids=customer_ids, until=until)
    sql = f"SELECT customer_id, item_id, MAX({_epoch_sql()}) FROM shop_event {where} GROUP BY customer_id, item_id"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {(customer, item): epoch for customer, item, epoch in cursor.fetchall()}


def _not_rejected(columns, rejections):
    """The negative signal: a mask dropping a customer's events on an item up to the moment they rejected it
    (None: nothing to drop).

    What the customer did with the item no longer counts as evidence of liking it, neither in training
    nor when their history is scored; events after the feedback (they changed their mind) stay.
    """
    customers, items, _types, epochs = columns
    if not rejections or not len(customers):
        return None
    rejected_customers = np.fromiter((c for c, _i in rejections), dtype=np.int64)
    rejected_items = np.fromiter((i for _c, i in rejections), dtype=np.int64)
    suspects = np.flatnonzero(np.isin(customers, rejected_customers) & np.isin(items, rejected_items))
    keep = np.ones(len(customers), dtype=bool)
    for n in suspects:
        if epochs[n] <= rejections.get((int(customers[n]), int(items[n])), -1):
            keep[n] = False
    return keep


def interactions_load(*, until=None, since=None, item_ids=None, types=None):
    """All customers' item events in [since, until) as model inputs.

    `item_ids` fixes the item index (a trained model's); events on other items are left out.
    """
    columns = _event_columns(until=until, since=since, types=types)
    if item_ids is None:
        item_ids = np.unique(columns[1])
    return _group(columns, np.asarray(item_ids, dtype=np.int64))


def _item_positions(item_ids, items):
    """Each item's index in the sorted ``item_ids`` and whether it is there at all."""
    # item_ids is sorted (np.unique at training time), so the index is a binary search.
    mapped = np.searchsorted(item_ids, items).clip(max=max(len(item_ids) - 1, 0))
    known = (item_ids[mapped] == items) if len(item_ids) else np.zeros(len(items), dtype=bool)
    return mapped, known


def _group(columns, item_ids):
    customers, items, types, stamps = columns
    mapped, keep = _item_positions(item_ids, items)
    customers = customers[keep]
    ids, starts = np.unique(customers, return_index=True)
    offsets = np.append(starts, len(customers))
    return Interactions(
        ids,
        item_ids,
        Ragged(mapped[keep], offsets),
        Ragged(types[keep].astype(np.int64), offsets),
        Ragged(stamps[keep], offsets),
    )


def _aligned(found_ids, series, customer_ids):
    """``series`` (rows of the sorted ``found_ids``) re-ordered as ``customer_ids``; empty rows where not found."""
    wanted = np.asarray([int(c) for c in customer_ids], dtype=np.int64)
    position = np.searchsorted(found_ids, wanted).clip(max=max(len(found_ids) - 1, 0))
    present = found_ids[position] == wanted if len(found_ids) else np.zeros(len(wanted), dtype=bool)
    rows = np.where(present, position, len(found_ids))  # the row past the end: an empty one, appended
    out = []
    for ragged in series:
        with_empty = Ragged(ragged.values, np.append(ragged.offsets, ragged.offsets[-1]))
        out.append(with_empty.take(rows))
    return tuple(out)


def histories_for(*, customer_ids, item_ids):
    """Current histories of the given customers over a trained model's item index, in their order:
    (histories, event types, timestamps), each a Ragged with one row per customer (empty where none)."""
    grouped = _group(_event_columns(customer_ids=customer_ids), np.asarray(item_ids, dtype=np.int64))
    return _aligned(grouped.customer_ids, (grouped.histories, grouped.event_types, grouped.timestamps), customer_ids)


def purchased_items(*, customer_ids):
    """Per customer, the database ids of the items they bought."""
    return _items_by_type(customer_ids, EventType.PURCHASE)


def not_interested_items(*, customer_ids):
    """Per customer, the database ids of the items they said "not interested" in: never recommended to them."""
    return _items_by_type(customer_ids, EventType.NOT_INTERESTED)


def _items_by_type(customer_ids, event_type):
    found = {int(c): set() for c in customer_ids}
    rows = (
        Event.objects.filter(customer_id__in=list(found), type=event_type, item__isnull=False)
        .values_list("customer_id", "item_id")
        .distinct()
    )
    for customer, item in rows:
        found[customer].add(item)
    return found


def item_features(item_ids):
    """Side information per item index: category path prefixes, brand and price band, as token ids."""
    items = Item.objects.in_bulk([int(i) for i in item_ids])
    prices = np.array(
        [float(items[int(i)].price) for i in item_ids if int(i) in items and items[int(i)].price is not None]
    )
    edges = np.quantile(prices, [0.2, 0.4, 0.6, 0.8]) if len(prices) else np.array([])
    vocabulary, features = {}, []
    for item_id in item_ids:
        item = items.get(int(item_id))
        tokens = []
        if item is not None:
            levels = [level.strip() for level in item.category_path.split(">") if level.strip()]
            tokens += ["cat:" + " > ".join(levels[: depth + 1]) for depth in range(len(levels))]
            tokens += [f"brand:{item.brand}"] if item.brand else []
            if item.price is not None and len(edges):
                tokens.append(f"price:{int(np.searchsorted(edges, float(item.price)))}")
        features.append(np.array([vocabulary.setdefault(t, len(vocabulary)) for t in tokens], dtype=np.int64))
    return features


@dataclass
class Orders:
    """Every customer's purchases as model inputs, with the order each belongs to."""

    customer_ids: np.ndarray  # database ids, one per history
    item_ids: np.ndarray  # database ids; item_ids[index] is the item behind model index `index`
    histories: Ragged  # per customer: item indices in time order
    timestamps: Ragged  # per customer: seconds since the epoch
    orders: Ragged  # per customer: each purchase's order number (recommender.ml.baskets.order_numbers)

    @property
    def n_events(self):
        return len(self.histories.values)


def purchase_orders_load(*, until=None):
    """Every customer's purchases of items (quantity above 0) before ``until`` in time order, grouped into
    orders.

    An order is the shop's order id where the event names one, else the customer's purchases at the
    same moment.
    """
    customers, items, epochs, numbers = _purchase_columns(until=until)
    return _orders_of(customers, items, epochs, numbers, np.unique(items))


def purchase_orders_for(*, customer_ids, item_ids, bought=None):
    """The given customers' purchases (quantity above 0) over a trained model's item index, grouped into
    orders: (histories, timestamps, orders), each a Ragged with one row per customer in the order given
    (empty where none). What serving scores a model fitted on orders with.

    ``bought``: a dict that the same read fills with what :func:`purchased_items` gives, {customer id: the
    item ids of all their purchases}, every item and every quantity (a return's 0 or below too), an empty set
    for a customer with none. Serving needs both; one read of the customers' events instead of two.
    """
    item_ids = np.asarray(item_ids, dtype=np.int64)
    if bought is not None:
        bought.update({int(c): set() for c in customer_ids})
    if len(customer_ids):
        grouped = _orders_of(*_purchase_columns(customer_ids=customer_ids, bought=bought), item_ids)
    else:
        grouped = _orders_of(*[np.zeros(0, np.int64)] * 4, item_ids)
    return _aligned(grouped.customer_ids, (grouped.histories, grouped.timestamps, grouped.orders), customer_ids)


def _purchase_columns(*, customer_ids=None, until=None, bought=None):
    """(customer_id, item_id, epoch, order number) columns of purchases (quantity above 0), per customer in
    time order. ``bought``: see :func:`purchase_orders_for` (then every quantity is read, the others dropped
    here).

    The order numbers (recommender.ml.baskets.order_numbers, per customer) are computed per batch of rows,
    a customer's rows all in one batch: the order id texts never pile up for the whole load.
    """
    where, params = _where(types=[EventType.PURCHASE.value], customer_ids=customer_ids, until=until)
    if bought is None:
        sql = (
            f"SELECT customer_id, item_id, {_epoch_sql()}, order_id FROM shop_event {where} "
            "AND quantity > 0 ORDER BY customer_id, occurred_at, id"
        )
    else:
        sql = (
            f"SELECT customer_id, item_id, {_epoch_sql()}, order_id, quantity > 0 FROM shop_event {where} "
            "ORDER BY customer_id, occurred_at, id"
        )
    parts, pending = [], None
    for rows in rows_in_batches(sql, params):
        if bought is not None:
            for row in rows:
                bought[row[0]].add(row[1])
            rows = [row[:4] for row in rows if row[4]]
            if not rows:
                continue
        block = _purchase_block(rows)
        del rows
        if pending is not None:
            block = [np.concatenate([a, b]) for a, b in zip(pending, block)]
        # the last customer's rows may go on in the next batch: kept for it
        cut = int(np.searchsorted(block[0], block[0][-1]))
        parts.append(_numbered(*[column[:cut] for column in block]))
        pending = [column[cut:] for column in block]
    if pending is not None:
        parts.append(_numbered(*pending))
    if not parts:
        return [np.zeros(0, np.int64)] * 4
    return [np.concatenate(column) for column in zip(*parts)]


def _purchase_block(rows):
    """NumPy columns of a batch of (customer_id, item_id, epoch, order_id) rows; order ids as texts."""
    numbers = np.array([row[:3] for row in rows], dtype=np.int64).reshape(len(rows), 3)
    order_ids = np.array([row[3] for row in rows], dtype=object)
    return [numbers[:, 0].copy(), numbers[:, 1].copy(), numbers[:, 2].copy(), order_ids]


def _numbered(customers, items, epochs, order_ids):
    """The block's columns with each purchase's order number in place of its order id text."""
    return [customers, items, epochs, order_numbers_by_customer(customers, epochs, order_ids)]


def _orders_of(customers, items, epochs, numbers, item_ids):
    """Orders over the sorted ``item_ids`` from columns in customer and time order; purchases of other items
    are left out (their order numbers are counted before that), the customers stay (with empty rows)."""
    mapped, known = _item_positions(item_ids, items)
    ids, starts = np.unique(customers, return_index=True)
    kept_before = np.concatenate([[0], np.cumsum(known)])  # purchases kept before each row
    offsets = kept_before[np.append(starts, len(customers))]
    return Orders(
        customer_ids=ids,
        item_ids=item_ids,
        histories=Ragged(mapped[known], offsets),
        timestamps=Ragged(epochs[known], offsets),
        orders=Ragged(numbers[known], offsets),
    )


def time_split(data, *, val_quantile=0.8, test_quantile=0.9):
    """A time-based split in the shape of recommender.ml.data.Split.

    Two cut-offs at quantiles of all event times. Training is everything before the first; the
    validation target is a customer's first *new* item (not in their history) between the cut-offs;
    the test target their first new item after the second, predicted from all their events before it.
    Customers lacking any of the three parts still train but are not evaluated.
    """
    stamps = np.concatenate([t for t in data.timestamps if len(t)])
    t_val, t_test = np.quantile(stamps, [val_quantile, test_quantile])
    train, val_t, test_t, test_hist, users = [], [], [], [], []
    for user, (items, times) in enumerate(zip(data.histories, data.timestamps)):
        before_val, before_test = items[times < t_val], items[times < t_test]
        val = _first_new(items[(times >= t_val) & (times < t_test)], before_val)
        test = _first_new(items[times >= t_test], before_test)
        train.append(before_val)
        test_hist.append(before_test)
        val_t.append(val)
        test_t.append(test)
        if len(before_val) and val >= 0 and test >= 0:
            users.append(user)
    split = TimeSplit(
        train,
        np.array(val_t),
        np.array(test_t),
        np.array(users, dtype=np.int64),
        len(data.item_ids),
        len(data.histories) - len(users),
    )
    split.extra.update(test_history=test_hist, cutoffs=(float(t_val), float(t_test)))
    return split


def _first_new(items, history):
    seen = set(history.tolist())
    return next((int(i) for i in items if int(i) not in seen), -1)


class TimeSplit(Split):
    """A Split whose test history is everything before the test cut-off."""

    def test_histories(self):
        return [self.extra["test_history"][u] for u in self.eval_users]
