"""A promotion's pool of unique codes: generated, or uploaded as a file (all or nothing)."""

import io
import re
import secrets

from django.core.exceptions import ValidationError
from django.db import transaction

from campaigns.models import Promotion, PromotionCode

ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: codes are typed in by hand
CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{3,63}$")
MAX_GENERATE = 1_000_000
MAX_ERRORS_LISTED = 20


def codes_generate(*, promotion: Promotion, count: int, prefix: str = "", length: int = 10):
    """Add `count` new random codes to the pool; returns how many were added (always `count`)."""
    if not 0 < count <= MAX_GENERATE:
        raise ValidationError(f"count: between 1 and {MAX_GENERATE:,}.")
    if prefix and not CODE_RE.match(prefix + "XXXX"):
        raise ValidationError("prefix: letters, digits, '-' and '_' only.")
    with transaction.atomic():
        before = promotion.codes.count()
        added = 0
        while added < count:  # a collision with an existing code is astronomically rare, but retried
            codes = {prefix + "".join(secrets.choice(ALPHABET) for _ in range(length)) for _ in range(count - added)}
            PromotionCode.objects.bulk_create(
                [PromotionCode(promotion=promotion, code=c, source=PromotionCode.Source.GENERATED) for c in codes],
                ignore_conflicts=True,
                batch_size=5000,
            )
            added = promotion.codes.count() - before
    return added


def codes_upload(*, promotion: Promotion, file):
    """Add the codes of a text/CSV file (one per line, optional header 'code'); nothing is added on any error."""
    raw = file.read()
    try:
        text = raw.decode("utf-8-sig") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError:
        raise ValidationError("The file is not UTF-8 text.") from None
    codes, errors, first_line = {}, [], {}
    for number, line in enumerate(io.StringIO(text), start=1):
        code = line.strip().split(",")[0].strip().strip('"')
        if not code or (number == 1 and code.lower() == "code"):
            continue
        if not CODE_RE.match(code):
            errors.append((number, f"{code!r} is not a code (4 to 64 letters, digits, '-' or '_')"))
        elif code in first_line:
            errors.append((number, f"{code!r} repeats line {first_line[code]}"))
        else:
            first_line[code] = number
            codes[code] = number
    taken = PromotionCode.objects.filter(code__in=list(codes)).values_list("code", flat=True)
    errors += [(codes[c], f"{c!r} exists already (codes are unique across all promotions)") for c in taken]
    if not codes and not errors:
        raise ValidationError("The file holds no codes.")
    if errors:
        listed = [f"line {line}: {problem}" for line, problem in sorted(errors)[:MAX_ERRORS_LISTED]]
        more = f", the first {len(listed)} listed" if len(errors) > len(listed) else ""
        raise ValidationError([f"Nothing was added: {len(errors)} problem(s){more}.", *listed])
    with transaction.atomic():
        PromotionCode.objects.bulk_create(
            [PromotionCode(promotion=promotion, code=c, source=PromotionCode.Source.UPLOADED) for c in codes],
            batch_size=5000,
        )
    return len(codes)
