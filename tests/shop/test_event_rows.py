import datetime

import pandas as pd

from shop.services.event_rows import RowChecker

MAPPING = {"customer": "customer", "item": "item", "occurred_at": "occurred_at", "type": "type"}


def chunk(*rows):
    return pd.DataFrame([dict(zip(MAPPING, row)) for row in rows], dtype=str)


def test_content_ids_stay_what_earlier_versions_made(settings):
    # given a file without event ids, in two chunks, that repeats a row within and across chunks
    settings.EVENT_EARLIEST_DATE = datetime.date(1900, 1, 1)
    checker = RowChecker(mapping=MAPPING, source="s")
    before_1970 = ("c1", "i1", "1969-12-31T23:59:59Z", "view")
    # when its rows are checked
    first = checker.check(chunk(before_1970, before_1970, ("c1", "i1", "2024-01-01", "view")), 2)
    second = checker.check(chunk(before_1970), 5)
    # then each gets the id the earlier versions gave it (a re-import would otherwise store it twice)
    assert list(first.rows["client_event_id"]) == [
        "t-0000000001.8431873591969211259",
        "t-0000000001.8431873591969211259-1",
        "t01704067200.7302866485159684541",
    ]
    assert list(second.rows["client_event_id"]) == ["t-0000000001.8431873591969211259-2"]
