"""The audience rule language: validation, compilation to a customer query, and counts.

A rule group is {"match": "all" | "any", "rules": [...]} whose rules are rules or groups. A rule is
{"field": ..., "op": ..., "value": ..., plus "key" or "days" where the field takes them}; FIELDS lists
them all (the browser's rule builder is generated from it). Behaviour rules look back from the shop's
clock: the time of the latest event received, which is "now" for a live shop and the end of the data
for a historical data set.
"""

import math
import re
from datetime import timedelta
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import OperationalError, connection, transaction
from django.db.models import Count, Exists, Max, OuterRef, Q, Sum
from django.utils import timezone

from campaigns.purchase_summary import PurchaseSource
from shop.api.parsers import unstorable
from shop.models import Customer, Event, EventType, Item
from shop.services.event_rows import event_time_window

MAX_DEPTH = 4
MAX_RULES = 50  # rules and groups in all: each is a subquery or a condition of the one customer query
MAX_NUMBER = 10**9  # beyond any count, spend or attribute a rule compares with
MAX_DAYS = 36_500  # a look-back window of a century; more overflows the date arithmetic
MAX_TEXT = 200
COUNT_WORK_MEM = "64MB"  # per sort or hash of the count's plan: a million customers' aggregates fit
QUERY_CANCELED = "57014"  # PostgreSQL's SQLSTATE for a statement cancelled by statement_timeout
KEY_PATTERN = re.compile(r"[A-Za-z0-9_.\- ]{1,64}")
COMPARE = ["gte", "lte", "gt", "lt", "eq"]

FIELDS = {
    "email_domain": {"label": "e-mail domain", "ops": ["eq", "ne"], "value": "text"},
    "time_zone": {"label": "time zone", "ops": ["eq", "ne"], "value": "text"},
    "demographic": {"label": "demographic", "ops": ["eq", "ne", "gte", "lte"], "value": "text", "key": True},
    "attribute": {"label": "attribute", "ops": ["eq", "ne", "gte", "lte"], "value": "text", "key": True},
    "recency_days": {"label": "days since last purchase", "ops": ["lte", "gte"], "value": "number"},
    "frequency": {"label": "purchases in the last N days", "ops": COMPARE, "value": "number", "days": True},
    "monetary": {"label": "spend in the last N days", "ops": COMPARE, "value": "number", "days": True},
    "bought_category": {"label": "bought in category", "ops": ["yes", "no"], "value": "text", "days": True},
    "bought_brand": {"label": "bought brand", "ops": ["yes", "no"], "value": "text", "days": True},
    "viewed_not_bought": {
        "label": "viewed but did not buy, in category",
        "ops": ["yes"],
        "value": "text",
        "days": True,
    },
    "affinity": {
        "label": "affinity to a promotion's items (active model)",
        "ops": ["top_percent"],
        "value": "number",
        "promotion": True,
    },
}
OP_LABELS = {
    "eq": "is",
    "ne": "is not",
    "gte": "at least",
    "lte": "at most",
    "gt": "more than",
    "lt": "less than",
    "yes": "yes",
    "no": "no",
    "top_percent": "in the top %",
}


def rules_validate(rules, path="rules"):
    """Raise ValidationError naming the first problem and where it is (e.g. rules[1].rules[0].value).

    Besides each rule's sense, it bounds the work an audience may ask of the database: at most MAX_RULES
    rules and groups in all, nested at most MAX_DEPTH deep (2,000 OR'ed rules once ran for minutes), and
    numbers finite and within what a rule can mean (NaN, Infinity or 1e999 used to end in a 500).
    """
    if rules in (None, {}):
        return
    seen = [0]
    _group_validate(rules, path, 0, seen)


def _group_validate(rules, path, depth, seen):
    if not isinstance(rules, dict) or "rules" not in rules:
        raise ValidationError(f"{path}: expected a group {{'match': 'all'|'any', 'rules': [...]}}.")
    if rules.get("match", "all") not in ("all", "any"):
        raise ValidationError(f"{path}.match: must be 'all' or 'any', not {rules.get('match')!r}.")
    if depth >= MAX_DEPTH:
        raise ValidationError(f"{path}: groups nest at most {MAX_DEPTH} deep.")
    if not isinstance(rules["rules"], list):
        raise ValidationError(f"{path}.rules: expected a list.")
    for index, rule in enumerate(rules["rules"]):
        where = f"{path}.rules[{index}]"
        seen[0] += 1
        if seen[0] > MAX_RULES:
            raise ValidationError(f"{where}: an audience holds at most {MAX_RULES} rules and groups in all.")
        if isinstance(rule, dict) and "rules" in rule:
            _group_validate(rule, where, depth + 1, seen)
        else:
            _rule_validate(rule, where)


def _rule_validate(rule, where):
    if not isinstance(rule, dict):
        raise ValidationError(f"{where}: expected a rule object.")
    field = rule.get("field")
    spec = FIELDS.get(field) if isinstance(field, str) else None
    if spec is None:
        raise ValidationError(f"{where}.field: unknown field {field!r}; the fields are {', '.join(FIELDS)}.")
    if rule.get("op") not in spec["ops"]:
        raise ValidationError(f"{where}.op: {rule.get('op')!r} does not apply to {rule['field']}; use {spec['ops']}.")
    value = rule.get("value")
    if value in (None, "") and rule["field"] not in ("viewed_not_bought",):
        raise ValidationError(f"{where}.value: a value is needed.")
    if spec["value"] == "number" or (spec.get("key") and rule["op"] in ("gte", "lte")):
        _number(value, f"{where}.value", limit=MAX_DAYS if rule["field"] == "recency_days" else MAX_NUMBER)
    elif not _plain(value):
        raise ValidationError(f"{where}.value: a text of at most {MAX_TEXT} characters, or a finite number.")
    if spec.get("key"):
        _key_validate(rule.get("key"), f"{where}.key", spec)
    if spec.get("days") and rule.get("days") not in (None, ""):
        if _number(rule["days"], f"{where}.days", limit=MAX_DAYS) <= 0:
            raise ValidationError(f"{where}.days: must be positive.")
    if spec.get("promotion"):
        from campaigns.models import Promotion

        if not Promotion.objects.filter(pk=_int(rule.get("promotion"), f"{where}.promotion")).exists():
            raise ValidationError(f"{where}.promotion: no promotion with id {rule.get('promotion')!r}.")
        if not 0 < _number(value, f"{where}.value") <= 100:
            raise ValidationError(f"{where}.value: a percentage between 0 and 100.")


def _plain(value):
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, str) and unstorable(value):
        return False  # NUL or a lone surrogate: PostgreSQL cannot take it as a query parameter
    return isinstance(value, str | int | type(None)) and len(str(value)) <= MAX_TEXT


def _key_validate(key, where, spec):
    # The key becomes part of a JSON lookup (demographics__<key>): "__" would make it a lookup of its own.
    key = str(key or "").strip()
    if not key:
        raise ValidationError(f"{where}: name the {spec['label']} (e.g. 'age').")
    if not KEY_PATTERN.fullmatch(key) or "__" in key:
        raise ValidationError(f"{where}: {key!r} is not a key (letters, digits, '-', '_' or '.', up to 64).")


def _number(value, where, limit=MAX_NUMBER):
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ValidationError(f"{where}: {value!r} is not a number.") from None
    if isinstance(value, bool) or not number.is_finite():
        raise ValidationError(f"{where}: {value!r} is not a number.")
    if abs(number) > limit:
        raise ValidationError(f"{where}: {value!r} is out of range (at most {limit:,} either way).")
    return number


def _int(value, where):
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        raise ValidationError(f"{where}: {value!r} is not an id.") from None
    if not 0 < number < 2**63:
        raise ValidationError(f"{where}: {value!r} is not an id.")
    return number


def shop_clock():
    """The time of the latest shop event received (cached a minute), or now when there is none.

    Customers' "not interested" answers are events too, but they happen in our time, not the shop's:
    one answer today must not move a historical data set's clock to today. Events dated further ahead than
    the import admits (stored before it checked) are ignored: one dated 2999 would empty every audience.
    """
    latest = cache.get("shop-clock")
    if latest is None:
        _, admitted_until = event_time_window()
        shop_events = Event.objects.exclude(type=EventType.NOT_INTERESTED).filter(occurred_at__lte=admitted_until)
        latest = _latest(shop_events, admitted_until) or timezone.now()
        cache.set("shop-clock", latest, 60)
    return latest


def _latest(events, until):
    """The latest occurred_at among events: first among the last day's and month's, which the BRIN index on
    occurred_at finds without reading the table (a max over all of 20M events read them all: 3 s), then,
    for a historical data set, among all."""
    for days in (1, 31, None):
        recent = events if days is None else events.filter(occurred_at__gte=until - timedelta(days=days))
        latest = recent.aggregate(latest=Max("occurred_at"))["latest"]
        if latest is not None or days is None:
            return latest


def audience_query(rules, *, summary=True):
    """The customers an audience's rules select (consent not applied: see audience_count).

    The purchase rules (recency, frequency, spend) read the per-customer purchase summary where there is
    one (campaigns/purchase_summary.py: the same customers, exactly, in a fraction of the time over millions
    of events); summary=False reads the events themselves (the tests compare the two).
    """
    rules_validate(rules)
    if not rules or not rules.get("rules"):
        return Customer.objects.all()
    source = PurchaseSource.current() if summary else None
    return Customer.objects.filter(_group_q(rules, shop_clock(), source))


def _group_q(group, now, source):
    parts = [_group_q(rule, now, source) if "rules" in rule else _rule_q(rule, now, source) for rule in group["rules"]]
    combined = Q()
    for part in parts:
        combined = (combined & part) if group.get("match", "all") == "all" else (combined | part)
    return combined


def _since(rule, now, default_days=365):
    return now - timedelta(days=float(rule.get("days") or default_days))


def _purchases(since):
    return Event.objects.filter(type=EventType.PURCHASE, occurred_at__gte=since)


def _rule_q(rule, now, source):
    field, op, value = rule["field"], rule["op"], rule.get("value")
    if field == "email_domain":
        q = Q(email__iendswith="@" + str(value).lstrip("@"))
        return ~q if op == "ne" else q
    if field == "time_zone":
        return ~Q(time_zone=value) if op == "ne" else Q(time_zone=value)
    if field in ("demographic", "attribute"):
        return _json_q("demographics" if field == "demographic" else "attributes", rule)
    if field == "recency_days":
        since = now - timedelta(days=float(value))
        if source is not None:
            return source.bought_since(since, negated=op != "lte")
        recent = _has(_purchases(since))
        return recent if op == "lte" else ~recent
    if field in ("frequency", "monetary"):
        return _aggregate_q(rule, now, source)
    if field in ("bought_category", "bought_brand"):
        items = _items_q(field, value)
        bought = _has(_purchases(_since(rule, now)).filter(item_id__in=items))
        return bought if op == "yes" else ~bought
    if field == "viewed_not_bought":
        items = _items_q("bought_category", value) if value else Item.objects.values("id")
        since = _since(rule, now, 30)
        viewed = Event.objects.filter(type=EventType.VIEW, occurred_at__gte=since, item_id__in=items)
        bought = _purchases(since).filter(item_id__in=items)
        return _has(viewed) & ~_has(bought)
    if field == "affinity":
        from campaigns.affinity import affinity_top_percent

        return Q(id__in=affinity_top_percent(promotion_id=int(rule["promotion"]), percent=float(value)))
    raise ValidationError(f"unknown field {field!r}")  # rules_validate stops this first


def _has(events):
    """Customers with at least one of these events, as EXISTS: negated, PostgreSQL plans it as an anti-join,
    where NOT IN (subquery) needs the whole subquery hashed in work_mem or else rescans it per customer
    (a "lapsed" rule over 20M events took minutes that way)."""
    return Q(Exists(events.filter(customer_id=OuterRef("pk"))))


def _items_q(field, value):
    lookup = {"category_path__startswith": value} if field == "bought_category" else {"brand": value}
    return Item.objects.filter(**lookup).values("id")


def _json_q(column, rule):
    key, op, value = str(rule["key"]).strip(), rule["op"], rule["value"]
    if op in ("gte", "lte"):
        # Numbers stored as numbers compare numerically; a value stored as text never matches a number.
        return Q(**{f"{column}__{key}__{op}": float(value)})
    q = Q(**{f"{column}__{key}": value})
    return ~q if op == "ne" else q


def _aggregate_q(rule, now, source):
    """frequency / monetary: compare each customer's count or spend since the window's start.

    Customers with no purchase at all count as 0, so "at most 2 purchases" includes them: those
    rules are written as "not among the customers above the bound".
    """
    op, bound = _bound(rule)
    if bound is None:
        return Q(pk__in=[])  # a count equal to a fraction
    since = _since(rule, now)
    if source is not None:

        def per_customer(lookup=None):
            return source.per_customer(rule["field"], since, lookup, bound)
    else:
        measure = Count("id") if rule["field"] == "frequency" else Sum("value")
        customers = _purchases(since).values("customer_id").annotate(m=measure)

        def per_customer(lookup=None):
            if lookup is None:
                return customers.values("customer_id")
            return customers.filter(**{"m" if lookup == "eq" else f"m__{lookup}": bound}).values("customer_id")

    include_zero = {"lte": bound >= 0, "lt": bound > 0, "eq": bound == 0, "gte": bound <= 0, "gt": False}[op]
    if include_zero and op in ("lte", "lt"):
        return ~Q(id__in=per_customer({"lte": "gt", "lt": "gte"}[op]))
    matching = Q(id__in=per_customer(op))
    if include_zero:
        return matching | ~Q(id__in=per_customer())
    return matching


def _bound(rule):
    """The rule's operator and bound as the database compares them, the same for the events and the summary:
    a count's bound made whole without changing whom it selects (at least 2.5 purchases is at least 3; None:
    no count equals 2.5), a spend's as the value column's Decimal."""
    op, value = rule["op"], float(rule["value"])
    if rule["field"] == "monetary":
        return op, Event._meta.get_field("value").get_prep_value(value)
    if value.is_integer():
        return op, int(value)
    whole = {"gte": math.ceil, "lt": math.ceil, "gt": math.floor, "lte": math.floor}.get(op)
    return op, (whole(value) if whole else None)


class AudienceCountTooSlow(Exception):
    """The count ran past AUDIENCE_COUNT_TIMEOUT_MS and PostgreSQL cancelled it."""


def audience_count(rules, *, timeout_ms: int | None = None):
    """How many customers the rules select, how many of them may be mailed, and why the others may not.

    The count runs while a marketer types, in a web worker: PostgreSQL cancels it after timeout_ms
    (AUDIENCE_COUNT_TIMEOUT_MS), set for this transaction only, so a costly rule set cannot hold a worker
    and a connection for minutes. Raises AudienceCountTooSlow then.
    """
    query = audience_query(rules)
    timeout_ms = settings.AUDIENCE_COUNT_TIMEOUT_MS if timeout_ms is None else timeout_ms
    if connection.vendor != "postgresql":
        return query.contact_counts()
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            # set_config(..., true) is SET LOCAL: it ends with this transaction, on every path. JIT compiling
            # cost 2.5 s of a 20M-event count (bench/run.py, audience stage) and saves nothing on a count;
            # the per-customer aggregates of a window spill to disk at the default 4 MB of work_mem.
            # Nested loops off: a rule's customers are estimated far too few (a comparison on a sum), and the next
            # rule was then checked per customer through an index (5 s for 539,376 customers, 20M events), where
            # hashing that rule's customers once takes 0.5 s. Over the purchase summary, sorting a window's
            # customer-days and merging them with the customers took half the time of hashing both (1.4 s
            # against 2.8 s for "at least 3 purchases in 90 days" at scale 1); over the events it would not.
            local = {
                "statement_timeout": str(timeout_ms),
                "jit": "off",
                "work_mem": COUNT_WORK_MEM,
                "enable_nestloop": "off",
                "enable_hashagg": "off" if PurchaseSource.current() is not None else "on",
            }
            cursor.execute("SELECT " + ", ".join(f"current_setting('{name}')" for name in local))
            before = dict(zip(local, cursor.fetchone(), strict=True))
            for name, value in local.items():
                cursor.execute("SELECT set_config(%s, %s, true)", [name, value])
            counts = query.contact_counts()
            # Inside an outer transaction (a savepoint here), the settings would outlive this block: restore them.
            for name, value in before.items():
                cursor.execute("SELECT set_config(%s, %s, true)", [name, value])
            return counts
    except OperationalError as error:
        if getattr(error.__cause__, "sqlstate", None) == QUERY_CANCELED:
            raise AudienceCountTooSlow(timeout_ms) from error
        raise
