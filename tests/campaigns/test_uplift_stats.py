"""Treated vs holdout: intervals against hand-computed cases, the verdict, and the per-batch sums."""

import math
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from scipy import stats

from campaigns.services.stats import batch_uplift_rebuild
from campaigns.services.uplift_stats import (
    differences_sum,
    groups_compare,
    mean_difference,
    proportion_difference,
    uplift_verdict,
)
from tests.factories import (
    BatchFactory,
    ConversionFactory,
    CustomerFactory,
    EventFactory,
    ItemFactory,
    MessageEventFactory,
)


def test_it_computes_walds_interval_for_a_difference_of_rates():
    # given 120 of 1,000 treated and 90 of 1,000 held-out customers responded
    # when
    d = proportion_difference(120, 1000, 90, 1000)
    # then, by hand: se = sqrt(.12 x .88 / 1000 + .09 x .91 / 1000) = sqrt(.0001875) = 0.0136931;
    # 1.959964 x se = 0.0268379, so 0.03 ± 0.0268379
    assert d.estimate == pytest.approx(0.03)
    assert d.se == pytest.approx(0.0136931, abs=1e-7)
    assert (d.low, d.high) == (pytest.approx(0.0031621, abs=1e-7), pytest.approx(0.0568379, abs=1e-7))
    assert d.verdict == "+3.0 points, significant"


def test_it_says_not_significant_yet_when_the_interval_holds_zero():
    # 100 vs 90 of 1,000: se = sqrt(.09 / 1000 + .0819 / 1000) = 0.0131111, 0.01 ± 0.0256972
    d = proportion_difference(100, 1000, 90, 1000)
    assert (d.low, d.high) == (pytest.approx(-0.0156972, abs=1e-7), pytest.approx(0.0356972, abs=1e-7))
    assert d.verdict == "not significant yet"
    assert proportion_difference(80, 1000, 101, 1000).verdict == "not significant yet"
    assert proportion_difference(50, 1000, 90, 1000).verdict == "-4.0 points, significant"
    assert uplift_verdict(None) == "no data yet"


def test_it_computes_welchs_interval_from_sums():
    treated, control = [1, 2, 3, 4, 5], [1, 1, 2, 2]
    # given only n, sum and sum of squares: 5, 15, 55 and 4, 6, 10
    d = mean_difference(15, 55, 5, 6, 10, 4)
    # then, by hand: variances 2.5 and 1/3; se = sqrt(2.5/5 + (1/3)/4) = sqrt(0.583333) = 0.763763;
    # df = 0.583333² / (0.5²/4 + 0.083333²/3) = 0.340278 / 0.0648148 = 5.25
    assert d.estimate == 1.5
    assert d.se == pytest.approx(0.763763, abs=1e-6)
    half = stats.t.ppf(0.975, 5.25) * 0.7637626
    assert half == pytest.approx(1.9355, abs=1e-4)  # t(0.975, 5.25) = 2.5342 (tables: 2.5706 at 5, 2.4469 at 6)
    assert (d.low, d.high) == (pytest.approx(1.5 - half), pytest.approx(1.5 + half))
    # and the same as scipy's Welch test on the raw values
    reference = stats.ttest_ind(treated, control, equal_var=False).confidence_interval(0.95)
    assert (d.low, d.high) == (pytest.approx(reference.low), pytest.approx(reference.high))
    assert d.verdict == "not significant yet"


def test_it_words_a_significant_difference_per_customer():
    d = mean_difference(420.0, 420.0 * 1.0 + 1000.0, 1000, 0.0, 1000.0, 1000)
    assert d.significant
    assert d.verdict == "+0.42 per customer, significant"
    assert d.scaled(1000).estimate == pytest.approx(420)


def test_it_needs_two_customers_a_group_for_a_mean():
    assert mean_difference(1, 1, 1, 1, 1, 5) is None
    assert proportion_difference(0, 0, 1, 5) is None


def test_it_adds_independent_differences():
    a = proportion_difference(120, 1000, 90, 1000).scaled(1000)
    total = differences_sum([a, a])
    assert total.estimate == pytest.approx(60)
    assert total.se == pytest.approx(math.sqrt(2) * a.se)


@pytest.mark.django_db
def test_it_sums_each_groups_outcomes_in_the_window_after_the_send(campaign):
    # given a campaign that counts any purchase, a batch sent at `sent`, two treated and two held-out customers
    campaign.measured_response = "purchase"
    campaign.save()
    sent = timezone.now() - timedelta(days=20)
    t1, t2, h1, h2 = (CustomerFactory() for _ in range(4))
    batch = BatchFactory(campaign=campaign, sent_at=sent, recipients=[t1, t2], holdout=[h1, h2])
    costed = ItemFactory(price="10.00", cost="6.00")
    uncosted = ItemFactory(price="10.00", cost=None)
    # t1 buys twice inside the window (one at its very start), h1 once; t2 buys just after the 14 days
    EventFactory(customer=t1, item=costed, value="10.00", quantity=1, occurred_at=sent)
    EventFactory(customer=t1, item=uncosted, value="8.00", discount="2.00", occurred_at=sent + timedelta(days=3))
    EventFactory(customer=h1, item=costed, value="10.00", occurred_at=sent + timedelta(days=13, hours=23))
    EventFactory(customer=t2, item=costed, value="10.00", occurred_at=sent + timedelta(days=14))
    EventFactory(customer=h2, item=costed, value="10.00", occurred_at=sent - timedelta(seconds=1))
    # when
    groups = batch_uplift_rebuild(batch=batch).groups
    # then profit = value - cost x quantity (10 - 6 = 4), or 0.3 x list price - discount (0.3 x 10 - 2 = 1)
    # (the rows have no promotion, hence no prediction and no buyer of its items)
    for group in groups.values():
        assert [group.pop(k) for k in ("predicted_n", "predicted", "predicted_var", "buyers")] == [0, 0, 0, 0]
    assert groups["treated"] == {
        "n": 2, "responders": 1, "revenue": 18.0, "revenue_sq": 324.0, "profit": 5.0, "profit_sq": 25.0
    }  # fmt: skip
    assert groups["holdout"] == {
        "n": 2, "responders": 1, "revenue": 10.0, "revenue_sq": 100.0, "profit": 4.0, "profit_sq": 16.0
    }  # fmt: skip
    comparison = groups_compare(groups)
    assert comparison.response.estimate == 0
    assert comparison.revenue.estimate == pytest.approx(4.0)
    assert comparison.incremental_profit.estimate == pytest.approx(Decimal("1.0"))


@pytest.mark.django_db
def test_it_counts_each_recipient_once_per_stage_on_the_day_of_its_first_human_event(campaign):
    from campaigns.services.stats import batch_daily_rebuild

    day1 = timezone.now().replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=10)
    day2 = day1 + timedelta(days=1)
    batch = BatchFactory(
        campaign=campaign, sent_at=day1, generated_at=day1 - timedelta(days=1), recipients=2, holdout=1
    )
    a, b = batch.recipients.filter(outcome="recipient")
    for recipient, kind, at, bot in [
        (a, "delivered", day1, False),
        (b, "delivered", day1, False),
        (a, "opened", day1, True),  # a scanner's open: not counted
        (a, "opened", day2, False),
        (a, "opened", day2 + timedelta(hours=1), False),  # a second open: counted once
        (b, "clicked", day2, False),
        (b, "not_interested", day2, False),
    ]:
        MessageEventFactory(recipient=recipient, kind=kind, source="ours", occurred_at=at, is_bot=bot)
    ConversionFactory(recipient=b, occurred_at=day2, revenue=Decimal("20"), discount=Decimal("2"), margin=Decimal("7"))
    batch_daily_rebuild(batch=batch)
    batch_daily_rebuild(batch=batch)  # rebuilt, not added to
    rows = {
        row["day"]: row
        for row in batch.daily_stats.values(
            "day", "targeted", "sent", "delivered", "opened", "clicked", "not_interested", "converted", "revenue"
        )
    }
    assert rows[(day1 - timedelta(days=1)).date()]["targeted"] == 2
    assert {k: rows[day1.date()][k] for k in ("sent", "delivered", "opened")} == {
        "sent": 2,
        "delivered": 2,
        "opened": 0,
    }
    second = rows[day2.date()]
    assert (second["opened"], second["clicked"], second["not_interested"], second["converted"]) == (1, 1, 1, 1)
    assert second["revenue"] == Decimal("20.00")
