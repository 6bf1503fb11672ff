"""The dashboard page and its CSV export: parse the filters, call the selector, render."""

import csv

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import render
from django.urls import reverse

from campaigns.dashboard.selectors import (
    COUNTS,
    MONEY,
    campaign_choices,
    dashboard_data,
    dashboard_filters,
    next_steps,
)
from promo_site.db_routers import replica_reads
from promo_site.demo import demo_mode, measurement_window
from shop.services.completejourney import demo_shift_weeks


def _allowed(request):
    if not request.user.has_perm("campaigns.view_campaign"):
        raise PermissionDenied


@staff_member_required
def dashboard(request):
    _allowed(request)
    campaign_id, date_from, date_to = dashboard_filters(request.GET)
    with replica_reads():  # aggregates: a replica a few seconds behind shows the same (DATABASE_REPLICA_URL)
        data = dashboard_data(campaign_id=campaign_id, date_from=date_from, date_to=date_to)
        campaigns = campaign_choices()
    query = request.GET.urlencode()
    context = {
        **admin.site.each_context(request),  # the admin's header, links and styles
        **data,
        "title": "Dashboard",
        "measurement_days": settings.MEASUREMENT_DAYS,
        # In the demo the window closes DEMO_TIME_SCALE times faster: say how long it really lasts.
        "demo_window_minutes": measurement_window().total_seconds() / 60 if demo_mode() else None,
        "demo_shift_weeks": demo_shift_weeks(),
        "next_steps": [] if data["batch_rows"] else next_steps(request.user),
        # An empty chart titled "off" says nothing: the chart is there only with a global holdout to show.
        "global_holdout_on": bool(data["global_holdout"]["points"]),
        "campaigns": campaigns,
        "campaign_id": campaign_id,
        "date_from": date_from,
        "date_to": date_to,
        "csv_url": reverse("campaigns:dashboard_csv") + (f"?{query}" if query else ""),
        "charts": {
            "daily": data["daily"],
            "batches": [_chart_batch(row) for row in data["batch_rows"]],
            "global_holdout": data["global_holdout"]["points"],
        },
    }
    return render(request, "campaigns/dashboard.html", context)


def _chart_batch(row):
    profit = row.comparison.incremental_profit if row.comparison else None
    return {
        "label": f"{row.campaign.name} {row.label}",
        "profit": profit.estimate if profit else None,
        "low": profit.low if profit else None,
        "high": profit.high if profit else None,
    }


CSV_HEADER = [
    "level", "campaign", "batch", *COUNTS, *MONEY, "response", "n_treated", "n_holdout", "response_treated",
    "response_holdout", "response_uplift", "response_uplift_low", "response_uplift_high", "response_verdict",
    "profit_per_customer_uplift", "profit_per_customer_low", "profit_per_customer_high", "incremental_profit",
    "incremental_profit_low", "incremental_profit_high", "profit_verdict", "feedback_rate",
    # predicted against actual (the prediction's 90% interval); window_open: the actual counts still grow
    "window_end", "window_open",
    "buyers_predicted", "buyers_predicted_low", "buyers_predicted_high", "buyers_actual",
    "holdout_buyers_predicted", "holdout_buyers_predicted_low", "holdout_buyers_predicted_high",
    "holdout_buyers_actual",
    "redemptions_predicted", "redemptions_predicted_low", "redemptions_predicted_high", "redemptions_actual",
]  # fmt: skip


@staff_member_required
def dashboard_csv(request):
    """The table as CSV, with the same filters: one line per campaign, then one per batch."""
    _allowed(request)
    campaign_id, date_from, date_to = dashboard_filters(request.GET)
    with replica_reads():
        data = dashboard_data(campaign_id=campaign_id, date_from=date_from, date_to=date_to)
    response = HttpResponse(content_type="text/csv")
    response["Content-Disposition"] = 'attachment; filename="promo-dashboard.csv"'
    writer = csv.writer(response)
    writer.writerow(CSV_HEADER)
    for level, rows in (("campaign", data["campaign_rows"]), ("batch", data["batch_rows"])):
        for row in rows:
            writer.writerow(_csv_line(level, row))
    return response


def _csv_line(level, row):
    c = row.comparison
    response = c.response if c else None
    profit = c.profit if c else None
    total = c.incremental_profit if c else None

    def nums(d, *names):
        return [(round(getattr(d, n), 6) if d else "") for n in names]

    return [
        level,
        row.campaign.name,
        row.label if row.batch else "",
        *[row.totals[k] for k in COUNTS],
        *[row.totals[k] for k in MONEY],
        row.response_label,
        c.n_treated if c else "",
        c.n_control if c else "",
        *nums(response, "treated", "control", "estimate", "low", "high"),
        response.verdict if response else "",
        *nums(profit, "estimate", "low", "high"),
        *nums(total, "estimate", "low", "high"),
        profit.verdict if profit else "",
        "" if row.feedback_rate is None else round(row.feedback_rate, 6),
        row.window_end.isoformat() if row.window_end else "",
        ("yes" if row.window_left else "no") if row.window_end else "",
        *[value for promise in row.promises for value in _promise_cells(promise)],
    ]


def _promise_cells(promise):
    if promise is None:
        return ["", "", "", ""]
    return [round(promise.predicted, 4), promise.low, promise.high, promise.actual]
