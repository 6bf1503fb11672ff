"""The marketers' pages: promotions, audiences, campaigns, batch review and approval (Django admin)."""

from campaigns.admin import audiences, batches, campaigns, promotions, uplift  # noqa: F401  (registers the pages)
