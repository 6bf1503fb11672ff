"""The pages customers reach from a message: tracked item links and unsubscribing."""

from django.core import signing
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from campaigns import links
from campaigns.models import Recipient
from campaigns.services.unsubscribe import customer_unsubscribe
from shop.models import Item


def click(request, token):
    """A tracked item link: check the signature, then send the customer on to the item."""
    try:
        recipient_id, item_id = links.click_read(token)
    except signing.BadSignature:
        raise Http404("unknown link") from None
    recipient = Recipient.objects.filter(id=recipient_id).only("id", "items").first()
    if recipient is None or item_id not in {entry["item_id"] for entry in recipient.items}:
        raise Http404("unknown link")
    return HttpResponseRedirect(links.item_shop_url(Item.objects.get(id=item_id)))


@csrf_exempt  # RFC 8058: mail providers POST "List-Unsubscribe=One-Click" without a session or token
@require_http_methods(["GET", "POST"])
def unsubscribe(request, token):
    """GET shows a confirmation button and changes nothing (link scanners follow GETs); POST unsubscribes."""
    try:
        recipient = Recipient.objects.select_related("customer").get(id=links.unsubscribe_read(token))
    except (signing.BadSignature, Recipient.DoesNotExist):
        raise Http404("unknown link") from None
    if request.method == "POST":
        customer_unsubscribe(customer=recipient.customer, source=f"link in batch {recipient.batch_id}")
        if request.POST.get("List-Unsubscribe") == "One-Click":
            return HttpResponse("unsubscribed", content_type="text/plain")
        return render(request, "campaigns/unsubscribed.html", {"customer": recipient.customer})
    return render(
        request,
        "campaigns/unsubscribe.html",
        {"customer": recipient.customer, "done": recipient.customer.unsubscribed_at},
    )
