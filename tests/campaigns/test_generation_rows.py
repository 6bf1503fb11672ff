"""The values generation COPYs for a recipient row: Django's get_db_prep_save, or equal to it."""

from datetime import datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from campaigns.models import Recipient
from campaigns.services.generation import _PLAIN_VALUES, _db_value


def rows():
    """A chosen recipient, an excluded one with nulls, and values of the types Django's path must take."""
    chosen = Recipient(
        id=12, batch_id=3, customer_id=4, promotion_id=5, outcome=Recipient.Outcome.RECIPIENT, reason="", code="AB-1",
        items=[{"item_id": 1, "title": "Tea"}], p_response=0.25, p_baseline=0.125, expected_value=Decimal("1.2345"),
        expected_revenue=Decimal("3.5000"), expected_discount=Decimal("0.5000"), expected_margin=Decimal("1.0000"),
        alternatives=[{"promotion_id": 5}], send_after=timezone.now(), attempts=2,
    )  # fmt: skip
    excluded = Recipient(id=13, batch_id=3, customer_id=6, outcome="excluded", reason=Recipient.Reason.HOLDOUT)
    odd = Recipient(
        id=14, batch_id=3, customer_id=7, outcome="excluded", p_response=Decimal("0.5"),
        expected_value=Decimal("NaN"), claimed_at=datetime(2026, 12, 3, 8, 0),
    )  # fmt: skip
    return [chosen, excluded, odd]


@pytest.mark.parametrize("row", rows(), ids=["chosen", "excluded", "odd"])
def test_it_copies_what_django_would_write(row, settings):
    settings.USE_TZ = True
    for field in Recipient._meta.concrete_fields:
        value = field.pre_save(row, True)
        kinds = _PLAIN_VALUES.get(field.get_internal_type(), ())
        try:
            want = field.get_db_prep_save(value, connection)
        except Exception as error:  # Django refuses it: so must the copy
            with pytest.raises(type(error)):
                _db_value(field, value, kinds)
            continue
        got = _db_value(field, value, kinds)
        if field.get_internal_type() == "JSONField":
            assert got.obj == want.obj
        else:
            assert got == want and type(got) is type(want), field.name
