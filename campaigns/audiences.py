"""The audience rule language: validation, compilation to a customer query, and counts.

A rule group is {"match": "all" | "any", "rules": [...]} whose rules are rules or groups. A rule is
{"field": ..., "op": ..., "value": ..., plus "key" or "days" where the field takes them}; FIELDS lists
them all (the browser's rule builder is generated from it). Behaviour rules look back from the shop's
clock: the time of the latest event received, which is "now" for a live shop and the end of the data
for a historical data set.
"""

from datetime import timedelta
from decimal import Decimal, InvalidOperation

from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db.models import Count, Max, Q, Sum
from django.utils import timezone

from shop.models import Customer, Event, EventType, Item
from shop.services.event_rows import event_time_window

MAX_DEPTH = 4
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


def rules_validate(rules, path="rules", depth=0):
    """Raise ValidationError naming the first problem and where it is (e.g. rules[1].rules[0].value)."""
    if rules in (None, {}):
        return
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
        if isinstance(rule, dict) and "rules" in rule:
            rules_validate(rule, where, depth + 1)
        else:
            _rule_validate(rule, where)


def _rule_validate(rule, where):
    if not isinstance(rule, dict):
        raise ValidationError(f"{where}: expected a rule object.")
    spec = FIELDS.get(rule.get("field"))
    if spec is None:
        raise ValidationError(
            f"{where}.field: unknown field {rule.get('field')!r}; the fields are {', '.join(FIELDS)}."
        )
    if rule.get("op") not in spec["ops"]:
        raise ValidationError(f"{where}.op: {rule.get('op')!r} does not apply to {rule['field']}; use {spec['ops']}.")
    value = rule.get("value")
    if value in (None, "") and rule["field"] not in ("viewed_not_bought",):
        raise ValidationError(f"{where}.value: a value is needed.")
    if spec["value"] == "number" or (spec.get("key") and rule["op"] in ("gte", "lte")):
        _number(value, f"{where}.value")
    if spec.get("key") and not str(rule.get("key") or "").strip():
        raise ValidationError(f"{where}.key: name the {spec['label']} (e.g. 'age').")
    if spec.get("days") and rule.get("days") not in (None, ""):
        if _number(rule["days"], f"{where}.days") <= 0:
            raise ValidationError(f"{where}.days: must be positive.")
    if spec.get("promotion"):
        from campaigns.models import Promotion

        if not Promotion.objects.filter(pk=_int(rule.get("promotion"), f"{where}.promotion")).exists():
            raise ValidationError(f"{where}.promotion: no promotion with id {rule.get('promotion')!r}.")
        if not 0 < _number(value, f"{where}.value") <= 100:
            raise ValidationError(f"{where}.value: a percentage between 0 and 100.")


def _number(value, where):
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ValidationError(f"{where}: {value!r} is not a number.") from None


def _int(value, where):
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValidationError(f"{where}: {value!r} is not an id.") from None


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
        latest = shop_events.aggregate(latest=Max("occurred_at"))["latest"] or timezone.now()
        cache.set("shop-clock", latest, 60)
    return latest


def audience_query(rules):
    """The customers an audience's rules select (consent not applied: see audience_count)."""
    rules_validate(rules)
    if not rules or not rules.get("rules"):
        return Customer.objects.all()
    return Customer.objects.filter(_group_q(rules, shop_clock()))


def _group_q(group, now):
    parts = [_group_q(rule, now) if "rules" in rule else _rule_q(rule, now) for rule in group["rules"]]
    combined = Q()
    for part in parts:
        combined = (combined & part) if group.get("match", "all") == "all" else (combined | part)
    return combined


def _since(rule, now, default_days=365):
    return now - timedelta(days=float(rule.get("days") or default_days))


def _purchases(since):
    return Event.objects.filter(type=EventType.PURCHASE, occurred_at__gte=since)


def _rule_q(rule, now):
    field, op, value = rule["field"], rule["op"], rule.get("value")
    if field == "email_domain":
        q = Q(email__iendswith="@" + str(value).lstrip("@"))
        return ~q if op == "ne" else q
    if field == "time_zone":
        return ~Q(time_zone=value) if op == "ne" else Q(time_zone=value)
    if field in ("demographic", "attribute"):
        return _json_q("demographics" if field == "demographic" else "attributes", rule)
    if field == "recency_days":
        recent = Q(id__in=_purchases(now - timedelta(days=float(value))).values("customer_id"))
        return recent if op == "lte" else ~recent
    if field in ("frequency", "monetary"):
        return _aggregate_q(rule, now)
    if field in ("bought_category", "bought_brand"):
        items = _items_q(field, value)
        bought = Q(id__in=_purchases(_since(rule, now)).filter(item_id__in=items).values("customer_id"))
        return bought if op == "yes" else ~bought
    if field == "viewed_not_bought":
        items = _items_q("bought_category", value) if value else Item.objects.values("id")
        since = _since(rule, now, 30)
        viewed = Event.objects.filter(type=EventType.VIEW, occurred_at__gte=since, item_id__in=items)
        bought = _purchases(since).filter(item_id__in=items)
        return Q(id__in=viewed.values("customer_id")) & ~Q(id__in=bought.values("customer_id"))
    if field == "affinity":
        from campaigns.affinity import affinity_top_percent

        return Q(id__in=affinity_top_percent(promotion_id=int(rule["promotion"]), percent=float(value)))
    raise ValidationError(f"unknown field {field!r}")  # rules_validate stops this first


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


def _aggregate_q(rule, now):
    """frequency / monetary: compare each customer's count or spend since the window's start.

    Customers with no purchase at all count as 0, so "at most 2 purchases" includes them: those
    rules are written as "not among the customers above the bound".
    """
    op, bound = rule["op"], float(rule["value"])
    measure = Count("id") if rule["field"] == "frequency" else Sum("value")
    per_customer = _purchases(_since(rule, now)).values("customer_id").annotate(m=measure)
    include_zero = {"lte": bound >= 0, "lt": bound > 0, "eq": bound == 0, "gte": bound <= 0, "gt": False}[op]
    if include_zero and op in ("lte", "lt"):
        above = {"lte": "gt", "lt": "gte"}[op]
        return ~Q(id__in=per_customer.filter(**{f"m__{above}": bound}).values("customer_id"))
    lookup = "m" if op == "eq" else f"m__{op}"
    matching = Q(id__in=per_customer.filter(**{lookup: bound}).values("customer_id"))
    if include_zero:
        return matching | ~Q(id__in=per_customer.values("customer_id"))
    return matching


def audience_count(rules):
    """How many customers the rules select, how many of them may be mailed, and why the others may not."""
    return audience_query(rules).contact_counts()
