"""Property-based tests of the file import (issue 13, "Trust", item 5).

Hypothesis writes CSV and Parquet files that mix good rows with hostile ones (wrong field counts, quoted
line breaks, NUL and invalid UTF-8 bytes, decimal commas, negative, NaN, infinite and huge numbers, dates
far away, empty and overlong ids, repeated event ids, blank lines), and each goes through the real
importer. Whatever the file, the importer
1. raises nothing but ImportFileError (a file refused whole, with a message, and nothing stored);
2. accounts for every row: stored + already there + rejected = the rows in the file;
3. stores no row the report lists as rejected, and every row it does not list;
4. stores only events that keep the documented rules (date window, non-negative numbers, an item unless
   a purchase or coupon redemption, ids within their lengths).

Each example runs in a savepoint rolled back afterwards, so they see an empty events table (the bulk-load
path) and leave nothing behind. Derandomized: CI runs the same examples every time.
"""

import csv
import io
import math
import os
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.db import transaction
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from shop.models import Customer, Event, EventType
from shop.services.event_rows import ITEM_REQUIRED_TYPES, MAX_ID, MAX_VALUE, event_time_window
from shop.services.imports import events_import_file
from shop.services.tables import ImportFileError

pytestmark = pytest.mark.django_db

# Derandomized and with no example database: CI runs the same examples every time. About 10 s in all here.
FUZZ = settings(
    max_examples=int(os.environ.get("IMPORT_FUZZ_EXAMPLES", "100")),
    deadline=None,
    derandomize=not os.environ.get("IMPORT_FUZZ_EXAMPLES"),
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
OPTIONAL = ["item", "type", "quantity", "value", "discount", "event_id", "note"]
TYPES = [t.value for t in EventType]
ITEMLESS_TYPES = {t.value for t in EventType} - {t.value for t in ITEM_REQUIRED_TYPES}

# Text the importer should take, and text it must refuse or survive. Whitespace is spaces and tabs only:
# how exotic Unicode whitespace is stripped is pandas' business, not a property of the import.
safe_chars = st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp"))
ids = st.one_of(st.from_regex(r"[a-z]{1,3}[0-9]{1,4}", fullmatch=True), st.text(safe_chars, min_size=1, max_size=8))
hostile_ids = st.sampled_from(
    ["", "   ", "\t", "x" * (MAX_ID + 1), "y" * 5000, 'quo"te', "com,ma", "line\nbreak", "a\u2028b", "é ü 字", "-1"]
)
good_date_text = st.builds(
    lambda d, fmt: d.strftime(fmt),
    st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2025, 12, 31)),
    st.sampled_from(["%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S+05:30"]),
)
hostile_dates = st.sampled_from(
    [
        "",
        "notadate",
        "9999-12-31",
        "0001-01-01",
        "1677-09-21",
        "2262-04-12",
        "2100-01-01T00:00:00Z",
        "1970-01-01",
        "1999-12-31T23:59:59Z",
        "2024-02-30",
        "2024-01-01T25:00",
        "-1",
        "1e10",
        "NaT",
        "nan",
        "20240101",
        "1704067200",
        "2024-01-01 10:00:00+14:00",
        "2024-01-01 10:00:00-12:00",
        "12/31/2024",
        "31/12/2024",
        "2024-W01-1",
        "+002024-01-01",
        "2024-01-01T10:00:00.123456789123Z",
    ]
)
good_numbers = st.one_of(
    st.integers(0, 100).map(str), st.decimals(0, 9999, places=2, allow_nan=False, allow_infinity=False).map(str)
)
hostile_numbers = st.sampled_from(
    [
        "-1",
        "-0",
        "-4.00",
        "1,5",
        "1.5",
        "1e3",
        "NaN",
        "nan",
        "inf",
        "-inf",
        "Infinity",
        "1" + "0" * 30,
        "9999999999.99",
        "10000000000",
        "2147483648",
        "-2147483649",
        "0.005",
        ".5",
        "5.",
        "+3",
        " 7 ",
        "0x10",
        "١٢",
        "1_000",
        "1 000",
        "$5",
        "",
    ]
)
hostile_types = st.sampled_from(["", "refund", "VIEW", " Purchase ", "view\n", "coupon redemption", "purchase;drop"])


def field_values(name):
    if name == "customer":
        return st.one_of(ids, ids, ids, hostile_ids)
    if name == "item":
        return st.one_of(ids, ids, st.just(""), hostile_ids)
    if name == "type":
        return st.one_of(st.sampled_from(TYPES), st.sampled_from(TYPES), hostile_types)
    if name == "occurred_at":
        return st.one_of(good_date_text, good_date_text, hostile_dates)
    if name in ("quantity", "value", "discount"):
        return st.one_of(good_numbers, good_numbers, hostile_numbers)
    if name == "event_id":
        return st.one_of(ids, ids, hostile_ids, st.just("x" * 129))
    return st.one_of(st.text(safe_chars, max_size=20), hostile_ids)  # note


# Bytes spliced into a field: the file is no UTF-8 CSV any more and must be refused whole.
BAD_BYTES = [b"\x00", b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xc0\xaf", b"\xfe\xff"]


@st.composite
def csv_files(draw):
    """A CSV file as a spec: columns, and rows ("row", values), ("blank", text) or ("raw", bytes)."""
    columns = ["customer", "occurred_at"] + draw(st.lists(st.sampled_from(OPTIONAL), unique=True))
    columns = draw(st.permutations(columns))
    rows = []
    unreadable = draw(st.integers(0, 3)) == 0
    for _ in range(draw(st.integers(1, 12))):
        # Raw lines and invalid bytes make most files unreadable as a whole: in one file of four or so.
        kinds = ["row"] * 6 + ["short", "long", "blank", "repeat"] + (["raw", "bad_bytes"] if unreadable else [])
        kind = draw(st.sampled_from(kinds))
        if kind == "blank":
            rows.append(("blank", draw(st.sampled_from(["", "  ", "\t", " \t "]))))
        elif kind == "raw":
            rows.append(
                ("raw", draw(st.sampled_from([b'"unclosed,quote', b'a,"b"c,d', b'""', b'"",""', b"\r", b",,,"])))
            )
        elif kind == "repeat" and any(r[0] == "row" for r in rows):
            rows.append(draw(st.sampled_from([r for r in rows if r[0] == "row"])))
        else:
            values = [draw(field_values(c)) for c in columns]
            if kind == "short":
                values = values[: draw(st.integers(0, len(values) - 1))] or [values[0], ""][:1]
            elif kind == "long":
                values += draw(st.lists(st.text(safe_chars, max_size=5), min_size=1, max_size=3))
            elif kind == "bad_bytes":
                at = draw(st.integers(0, len(values) - 1))
                values[at] = values[at].encode() + draw(st.sampled_from(BAD_BYTES))
            rows.append(("row", values))
    return {
        "columns": columns,
        "rows": rows,
        "crlf": draw(st.booleans()),
        "bom": draw(st.booleans()),
        "event_type": draw(st.sampled_from([None, *TYPES])),
    }


def csv_bytes(spec):
    end = "\r\n" if spec["crlf"] else "\n"

    def line(values):
        buffer = io.StringIO()
        # bytes values are spliced in raw: written as Latin-1 text, then put back byte for byte
        csv.writer(buffer, lineterminator=end).writerow(
            [v.decode("latin-1") if isinstance(v, bytes) else v for v in values]
        )
        return _encode_mixed(buffer.getvalue(), values)

    out = ("\ufeff" if spec["bom"] else "").encode() + line(spec["columns"])
    for kind, content in spec["rows"]:
        if kind == "row":
            out += line(content)
        elif kind == "blank":
            out += (content + end).encode()
        else:
            out += content + end.encode()
    return out


def _encode_mixed(text, values):
    """`text` (a CSV line) as UTF-8, except that bytes values (decoded as Latin-1 to be written) go back raw."""
    raw = [v.decode("latin-1") for v in values if isinstance(v, bytes)]
    if not raw:
        return text.encode()
    out, rest = b"", text
    for piece in raw:
        head, _, rest = rest.partition(piece)
        out += head.encode() + piece.encode("latin-1")
    return out + rest.encode()


def csv_expectations(spec):
    """The data rows (line, values) the file has, if its structure is plain; None when it is not."""
    if any(kind == "raw" for kind, _ in spec["rows"]):
        return None
    rows, line = [], 2
    for kind, content in spec["rows"]:
        if kind == "blank":
            line += 1
            continue
        texts = [v.decode("latin-1") if isinstance(v, bytes) else v for v in content]
        if len(texts) == 1 and texts[0].strip(" \t") == "":
            line += 1  # one empty field is a blank line (or the `""` line the importer refuses)
            continue
        rows.append((line, texts))
        line += 1 + sum(t.count("\n") for t in texts)
    return rows


# ---------------------------------------------------------------------------------------------------------
# Parquet: typed columns (integers, floats with NaN and infinities, timestamps of every unit and zone) and
# string columns with the same hostile text.

TIMESTAMPS = [
    datetime(2001, 1, 1),
    datetime(2024, 6, 1, 12, 30),
    datetime(1999, 12, 31, 23, 59, 59),
    datetime(1970, 1, 1),
    datetime(1, 1, 1),
    datetime(1677, 9, 22),
    datetime(2262, 4, 11),
    datetime(2100, 1, 1),
    datetime(9999, 12, 31, 23, 59, 59),
]


FLOAT_IDS = st.sampled_from([2.0**53 + 2, 1e20, -1e19, 1.5, float("nan"), float("inf")])


@st.composite
def parquet_files(draw):
    n = draw(st.integers(1, 10))
    names = ["customer", "occurred_at"] + draw(st.lists(st.sampled_from(OPTIONAL[:-1]), unique=True))
    columns = {}
    for name in names:
        if name in ("customer", "item", "event_id"):
            kind = draw(st.sampled_from(["string", "int64", "float64"] if name != "event_id" else ["string", "int64"]))
            if kind == "string":
                values = draw(
                    st.lists(st.one_of(field_values(name), st.none(), st.just("nul\x00id")), min_size=n, max_size=n)
                )
            elif kind == "int64":
                values = draw(st.lists(st.one_of(st.integers(-(2**63), 2**63 - 1), st.none()), min_size=n, max_size=n))
            else:
                values = draw(
                    st.lists(
                        st.one_of(st.integers(-(2**40), 2**40).map(float), FLOAT_IDS, st.none()), min_size=n, max_size=n
                    )
                )
        elif name == "type":
            kind = "string"
            values = draw(st.lists(st.one_of(field_values(name), st.none()), min_size=n, max_size=n))
        elif name == "occurred_at":
            kind = draw(st.sampled_from(["timestamp[s]", "timestamp[ms]", "timestamp[us]", "timestamp[ns]", "string"]))
            if kind == "string":
                values = draw(st.lists(st.one_of(field_values(name), st.none()), min_size=n, max_size=n))
            else:
                dates = st.one_of(
                    st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2025, 12, 31)),
                    st.sampled_from(TIMESTAMPS),
                    st.none(),
                )
                if kind == "timestamp[ns]":  # nanoseconds reach 1677-09-21 to 2262-04-11 only
                    dates = st.one_of(
                        st.datetimes(min_value=datetime(1678, 1, 1), max_value=datetime(2262, 1, 1)), st.none()
                    )
                values = draw(st.lists(dates, min_size=n, max_size=n))
                kind += draw(st.sampled_from(["", "/UTC", "/+05:30"]))
        else:  # quantity, value, discount
            kind = draw(st.sampled_from(["int64", "float64", "string", "decimal128(12,2)"]))
            if kind == "int64":
                values = draw(
                    st.lists(
                        st.one_of(st.integers(-(2**63), 2**63 - 1), st.integers(-5, 50), st.none()),
                        min_size=n,
                        max_size=n,
                    )
                )
            elif kind == "float64":
                values = draw(st.lists(st.one_of(st.floats(), st.floats(0, 1000), st.none()), min_size=n, max_size=n))
            elif kind == "string":
                values = draw(st.lists(st.one_of(field_values(name), st.none()), min_size=n, max_size=n))
            else:
                values = draw(
                    st.lists(
                        st.one_of(
                            st.decimals(-(10**10) + 1, 10**10 - 1, places=2, allow_nan=False, allow_infinity=False),
                            st.none(),
                        ),
                        min_size=n,
                        max_size=n,
                    )
                )
        columns[name] = (kind, values)
    # Now and then a damaged file: cut short, it must be refused whole.
    damaged = draw(st.integers(0, 9)) == 9
    return {"columns": columns, "event_type": draw(st.sampled_from([None, *TYPES])), "damaged": damaged}


def arrow_type(kind):
    if kind.startswith("timestamp"):
        unit, _, zone = kind[len("timestamp[") :].partition("]")
        return pa.timestamp(unit, tz=zone.lstrip("/") or None)
    if kind.startswith("decimal128"):
        return pa.decimal128(12, 2)
    return {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64()}[kind]


def parquet_write(spec, path):
    arrays = {}
    for name, (kind, values) in spec["columns"].items():
        if kind.startswith("timestamp") and "/" in kind:
            values = [v if v is None else v.replace(tzinfo=UTC) for v in values]
        arrays[name] = pa.array(values, type=arrow_type(kind))
    pq.write_table(pa.table(arrays), path)
    if spec.get("damaged"):
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])


# ---------------------------------------------------------------------------------------------------------


def report_lines(path):
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["line", "column", "value", "reason"]
    return {int(row[0]) for row in rows[1:]}


def import_checked(path, *, event_type, expected_rows, row_keys):
    """Import `path` in a savepoint that is rolled back; check the four properties.

    `expected_rows`: how many data rows the file has (None: unknown). `row_keys`: {line: (customer, event_id)}
    as the importer should read them, or None when they cannot be told in advance.
    Returns "refused" or "imported".
    """
    report = path.with_name(path.stem + "-report.csv")
    with transaction.atomic():
        try:
            try:
                summary = events_import_file(path=path, event_type=event_type, report_path=report)
            except ImportFileError as refusal:
                # (1) the only failure is the importer's own, with a message; (2) and then nothing is stored
                assert str(refusal)
                event("refused: " + re.sub(r"\d+", "N", str(refusal).split(":", 1)[-1])[:40])
                assert Event.objects.count() == Customer.objects.count() == 0
                return "refused"
            rejected = report_lines(report)
            # (2) every row is accounted for, once
            assert summary.rows_stored + summary.rows_duplicate + summary.rows_rejected == summary.rows_total
            assert summary.rows_rejected == len(rejected)
            if expected_rows is not None:
                assert summary.rows_total == expected_rows
            events = list(
                Event.objects.values(
                    "customer__external_id",
                    "item__external_id",
                    "client_event_id",
                    "type",
                    "quantity",
                    "value",
                    "discount",
                    "occurred_at",
                )
            )
            assert len(events) == summary.rows_stored
            # (3) nothing stored comes from a rejected row, and every row not rejected is stored
            if row_keys is not None:
                assert rejected <= set(row_keys)
                kept = {line: key for line, key in row_keys.items() if line not in rejected}
                stored = {(e["customer__external_id"], e["client_event_id"]) for e in events}
                uses_ids = any(key[1] is not None for key in row_keys.values())
                if uses_ids:
                    assert stored <= set(kept.values()), "an event stored from a rejected row"
                    assert {key[1] for key in kept.values()} == {key[1] for key in stored}
                else:
                    assert {c for c, _ in stored} == {key[0] for key in kept.values()}
            # (4) every stored event keeps the rules
            earliest, latest = event_time_window()
            for stored_event in events:
                assert 0 < len(stored_event["customer__external_id"]) <= MAX_ID
                assert stored_event["customer__external_id"] == stored_event["customer__external_id"].strip()
                assert stored_event["type"] in TYPES
                assert stored_event["item__external_id"] or stored_event["type"] in ITEMLESS_TYPES
                assert stored_event["item__external_id"] is None or len(stored_event["item__external_id"]) <= MAX_ID
                assert earliest <= stored_event["occurred_at"] <= latest + timedelta(minutes=1)
                assert 0 <= stored_event["quantity"] < 2**31
                assert stored_event["value"] is None or Decimal(0) <= stored_event["value"] < MAX_VALUE
                assert Decimal(0) <= stored_event["discount"] < MAX_VALUE
                assert 0 < len(stored_event["client_event_id"]) <= 128
            return "imported"
        finally:
            transaction.set_rollback(True)


def csv_keys(spec, rows):
    if rows is None:
        return None
    columns = spec["columns"]
    keys = {}
    for line, values in rows:
        if len(values) != len(columns):
            keys[line] = (None, None)  # must be rejected: never matches a stored event
            continue
        row = dict(zip(columns, values))
        keys[line] = (row["customer"].strip(), row["event_id"].strip() if "event_id" in row else None)
    return keys


outcomes = {"csv": set(), "parquet": set()}


@FUZZ
@given(spec=csv_files())
@example(  # a NUL byte past the first 64 KiB read to recognise a CSV file
    spec={
        "columns": ["customer", "item", "type", "occurred_at"],
        "rows": [
            ("row", ["c1", "i1", "view", "2024-01-02", "y" * 70_000][:4]),
            ("row", ["c" * 70_000, "i1", "view", "2024-01-02"]),
            ("row", ["c\x002", "i1", "view", "2024-01-02"]),
        ],
        "crlf": False,
        "bom": False,
        "event_type": None,
    }
)
@example(  # a date in nanoseconds beside one in year 9999: the second parse's dates overflowed the first's unit
    spec={
        "columns": ["customer", "occurred_at"],
        "rows": [("row", ["c1", "2024-01-01T10:00:00.123456789123Z"]), ("row", ["c2", "9999-12-31"])],
        "crlf": False,
        "bom": False,
        "event_type": "purchase",
    }
)
def test_a_generated_csv_file_is_imported_or_refused_and_every_row_accounted_for(tmp_path, spec):
    path = tmp_path / "events.csv"
    path.write_bytes(csv_bytes(spec))
    event_type = spec["event_type"] if "type" not in spec["columns"] or spec["event_type"] else None
    if "type" not in spec["columns"] and not event_type:
        event_type = "purchase"
    rows = csv_expectations(spec)
    outcome = import_checked(
        path, event_type=event_type, expected_rows=None if rows is None else len(rows), row_keys=csv_keys(spec, rows)
    )
    event(f"csv {outcome}")
    outcomes["csv"].add(outcome)


@FUZZ
@given(spec=parquet_files())
@example(  # a NUL character in a customer id: PostgreSQL text cannot hold one
    spec={
        "columns": {
            "customer": ("string", ["c1", "nul\x00id"]),
            "occurred_at": ("string", ["2024-01-02", "2024-01-02"]),
        },
        "event_type": "purchase",
    }
)
@example(  # an int64 id column with a gap: read as float64, 2**53 + 1 became 2**53; 2**63 - 1 failed the import
    spec={
        "columns": {
            "customer": ("int64", [2**53 + 1, None, 2**63 - 1]),
            "occurred_at": ("string", ["2024-01-02", "2024-01-02", "2024-01-02"]),
        },
        "event_type": "purchase",
    }
)
@example(  # a float id past 2**63 has no integer to be
    spec={
        "columns": {"customer": ("float64", [1e20, 3.0]), "occurred_at": ("string", ["2024-01-02", "2024-01-02"])},
        "event_type": "purchase",
    }
)
@example(  # a Parquet file cut short
    spec={
        "columns": {"customer": ("string", ["c1"]), "occurred_at": ("string", ["2024-01-02"])},
        "event_type": "view",
        "damaged": True,
    }
)
def test_a_generated_parquet_file_is_imported_or_refused_and_every_row_accounted_for(tmp_path, spec):
    path = tmp_path / "events.parquet"
    parquet_write(spec, path)
    event_type = spec["event_type"] or ("purchase" if "type" not in spec["columns"] else None)
    n = len(spec["columns"]["customer"][1])
    outcome = import_checked(path, event_type=event_type, expected_rows=n, row_keys=parquet_keys(spec, n))
    event(f"parquet {outcome}")
    outcomes["parquet"].add(outcome)


def parquet_keys(spec, n):
    def whole(values):  # a float column of ids reads as integers if they all are, and fit an int64
        present = [v for v in values if v is not None and not math.isnan(v)]
        return all(math.isfinite(v) and v == round(v) and abs(v) < 2**63 for v in present)

    def text(kind, value, whole):
        if value is None or (kind == "float64" and math.isnan(value)):
            return ""
        if kind == "float64":
            return str(int(value)) if whole else str(value)
        return str(value).strip()

    customer_kind, customers = spec["columns"]["customer"]
    customers_whole = customer_kind == "float64" and whole(customers)
    event_kind, event_ids = spec["columns"].get("event_id", (None, [None] * n))
    return {
        line: (text(customer_kind, c, customers_whole), None if event_kind is None else text(event_kind, e, True))
        for line, c, e in zip(range(2, n + 2), customers, event_ids)
    }


def test_the_generated_files_were_both_imported_and_refused():
    # The properties mean little if every file was refused, or none: the mix is part of the test.
    if not outcomes["csv"] or not outcomes["parquet"]:
        pytest.skip("run with the fuzz tests above")
    assert outcomes["csv"] == {"imported", "refused"}
    assert outcomes["parquet"] == {"imported", "refused"}
