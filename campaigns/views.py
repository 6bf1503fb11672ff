"""The pages customers reach from a message: tracked item links, "not interested" and unsubscribing.

Every link is signed (campaigns/links.py): a forged token, or an item that was not in that message, is a
404, so there is nothing to enumerate. A GET never changes anything but recording a click: link
scanners follow GETs, so unsubscribing and "not interested" ask for a POST.
"""

from django.core import signing
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from campaigns import links
from campaigns.models import Recipient
from campaigns.services.feedback import feedback_record
from campaigns.services.tracking import click_record, unsubscribe_record
from shop.models import Item


def _message_item(read, token):
    """(recipient, item) named by a signed token, or 404 when forged or not an item of that message."""
    try:
        recipient_id, item_id = read(token)
    except signing.BadSignature:
        raise Http404("unknown link") from None
    recipient = Recipient.objects.filter(id=recipient_id).first()
    if recipient is None or item_id not in {entry["item_id"] for entry in recipient.items}:
        raise Http404("unknown link")
    return recipient, Item.objects.get(id=item_id)


def click(request, token):
    """A tracked item link: check the signature, record the click, then send the customer on to the item."""
    recipient, item = _message_item(links.click_read, token)
    click_record(
        recipient_id=recipient.id,
        item_id=item.id,
        user_agent=request.headers.get("User-Agent", ""),
        method=request.method,
    )
    return HttpResponseRedirect(links.item_shop_url(item))


@csrf_exempt  # the signed token in the URL is the secret a forged cross-site POST would need
@require_http_methods(["GET", "POST"])
def not_interested(request, token):
    """GET asks for a confirmation and changes nothing; POST stores the feedback."""
    recipient, item = _message_item(links.not_interested_read, token)
    if request.method == "POST":
        feedback_record(recipient=recipient, item_id=item.id, user_agent=request.headers.get("User-Agent", ""))
        return render(request, "campaigns/not_interested_done.html", {"item": item})
    return render(request, "campaigns/not_interested.html", {"item": item})


@csrf_exempt  # RFC 8058: mail providers POST "List-Unsubscribe=One-Click" without a session or token
@require_http_methods(["GET", "POST"])
def unsubscribe(request, token):
    """GET shows a confirmation button and changes nothing (link scanners follow GETs); POST unsubscribes."""
    try:
        recipient = Recipient.objects.select_related("customer").get(id=links.unsubscribe_read(token))
    except (signing.BadSignature, Recipient.DoesNotExist):
        raise Http404("unknown link") from None
    if request.method == "POST":
        unsubscribe_record(recipient=recipient, user_agent=request.headers.get("User-Agent", ""))
        if request.POST.get("List-Unsubscribe") == "One-Click":
            return HttpResponse("unsubscribed", content_type="text/plain")
        return render(request, "campaigns/unsubscribed.html", {"customer": recipient.customer})
    return render(
        request,
        "campaigns/unsubscribe.html",
        {"customer": recipient.customer, "done": recipient.customer.unsubscribed_at},
    )


def test_link(request):
    """Where a test send's unsubscribe and "not interested" links lead: nothing happens to anyone."""
    return HttpResponse(
        "This link is disabled in test sends: nobody was unsubscribed and no feedback was recorded.",
        content_type="text/plain",
    )


def demo_item(request, external_id):
    """The demo shop's product page, where a clicked item link lands while the shop is the demo's (links.py)."""
    if not links.demo_shop():
        raise Http404("not the demo shop")
    item = get_object_or_404(Item, external_id=external_id)
    return render(request, "campaigns/demo_item.html", {"item": item})
