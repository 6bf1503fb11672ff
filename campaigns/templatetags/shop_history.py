"""{% shop_history %}: the shop's own past campaigns on the dashboard (campaigns/dashboard/shop_history.py)."""

from django import template

from campaigns.dashboard.shop_history import shop_history_rows
from promo_site.db_routers import replica_reads

register = template.Library()


@register.inclusion_tag("campaigns/_shop_history.html")
def shop_history():
    with replica_reads():  # the heaviest read of the page: a replica takes it off the primary where there is one
        return {"history_rows": shop_history_rows()}
