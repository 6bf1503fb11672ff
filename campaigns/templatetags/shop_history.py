"""{% shop_history %}: the shop's own past campaigns on the dashboard (campaigns/dashboard/shop_history.py)."""

from django import template

from campaigns.dashboard.shop_history import shop_history_rows

register = template.Library()


@register.inclusion_tag("campaigns/_shop_history.html")
def shop_history():
    return {"history_rows": shop_history_rows()}
