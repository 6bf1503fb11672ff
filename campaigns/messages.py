"""A recipient's message, rendered on demand from what its batch fixed at generation.

A batch stores no message bodies (at a million recipients they would be gigabytes nobody reads). What each
message says is fixed when the batch is generated, and rendering it again gives the same text every time:

- the templates: the batch's settings (Batch.settings: the campaign's subject and body as they were, with
  the campaign's version; an edit of the campaign afterwards makes a batch in review stale and voids an
  approval, campaigns/approvals.py, and never reaches this batch's messages);
- the promotions' wording: Batch.message_snapshot["promotions"], written before the first recipient;
- each recipient's code and items, with each item's wording as it was (title, price, image, the past item
  that led to it, the reason): Recipient.items;
- the links: signed without a timestamp (campaigns/links.py), the same at every render.

The customer's name and address are read at render: the address must be the current one anyway, and an
erased customer (services/privacy.py) leaves no copy of their name in a stored body.

Generation renders every recipient's message once and discards it, recording why it failed
(Recipient.render_error), so approval is refused exactly as when bodies were stored. Batches generated
before this (Batch.Rendering.STORED) keep their stored subject and body.
"""

from campaigns import links
from campaigns.models import Batch
from campaigns.render_check import RenderCheck
from campaigns.rendering import MessageRenderer, TemplateProblem, html_to_text, message_context

ITEM_WORDING = ("title", "price", "image_url", "because", "reason")  # kept in Recipient.items per item


def item_wording(item, because=None, reason=""):
    """What a message shows of an item (stored in Recipient.items beside the item's id)."""
    return {
        "title": item.title or item.external_id,
        "price": str(item.price) if item.price is not None else "",
        "image_url": item.image_url,
        "because": str(because) if because is not None else "",
        "reason": reason,
    }


class BatchMessages:
    """Renders the messages of one batch's recipients: compile the batch's templates once, render per row."""

    def __init__(self, batch):
        self.stored = batch.rendering == Batch.Rendering.STORED
        self.promotions = (batch.message_snapshot or {}).get("promotions", {})
        self.renderer = (
            None if self.stored else MessageRenderer(batch.settings.subject_template, batch.settings.body_template)
        )
        self.render_check = None if self.stored else RenderCheck(self.renderer)

    def context(self, row, message_links=links.message_links):
        """The template context of one recipient row (its customer loaded or loadable)."""
        item_links, unsubscribe_url = message_links(row.id, [entry["item_id"] for entry in row.items])
        items = [
            {**{key: entry.get(key, "") for key in ITEM_WORDING}, "url": url, "not_interested_url": not_interested_url}
            for entry, (url, not_interested_url) in zip(row.items, item_links)
        ]
        return message_context(
            customer=row.customer,
            promotion=self.promotions[str(row.promotion_id)],
            code=row.code,
            items=items,
            unsubscribe_url=unsubscribe_url,
        )

    def render(self, row):
        """(subject, html, text) of a recipient's message; raises rendering.TemplateProblem."""
        if self.stored:
            return row.subject, row.body_html, html_to_text(row.body_html)
        return self.renderer.render(self.context(row))

    def check(self, row):
        """Raise rendering.TemplateProblem where rendering the recipient's message would (generation's check:
        one render per shape of message, campaigns/render_check.py).

        Where the templates only write the links out, their size is all that counts: the check runs first on
        links padded to their longest (links.message_links_padded, no signing), and a message that passes
        so passes with its real links; one that does not is checked again on them, which decides."""
        if self.stored:
            return
        if self.render_check.links_only_written:
            try:
                self.render_check.check(self.context(row, links.message_links_padded))
                return
            except TemplateProblem:
                pass
        self.render_check.check(self.context(row))


def recipient_message(row):
    """(subject, html, text) of one recipient's message (one row: the recipient page, a test send)."""
    return BatchMessages(Batch.objects.get(id=row.batch_id)).render(row)  # as it is now, not a cached copy
