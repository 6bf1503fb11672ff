import html
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from campaigns import links
from campaigns.models import Batch, Recipient
from campaigns.services.batches import batch_request
from campaigns.services.generation import batch_generate
from shop.models import Customer
from tests.campaigns.conftest import promotion


@pytest.fixture
def batch(campaign, active_model, marketer):
    batch = Batch.objects.get(pk=batch_request(campaign=campaign, by=marketer))
    batch_generate(batch_id=batch.id)
    return Batch.objects.get(pk=batch.pk)


def sent_row(batch):
    """One of the batch's messages, as if it had gone out: only a sent message's link unsubscribes."""
    row = batch.recipients.filter(outcome=Recipient.Outcome.RECIPIENT).first()
    Recipient.objects.filter(pk=row.pk).update(send_status=Recipient.SendStatus.SENT, sent_at=timezone.now())
    return row


@pytest.mark.django_db
class TestRoles:
    @pytest.mark.parametrize("page", ["promotion", "audience", "campaign"])
    def test_only_a_marketer_builds(self, client, marketer, approver, analyst, page):
        url = reverse(f"admin:campaigns_{page}_add")
        client.force_login(marketer)
        assert client.get(url).status_code == 200
        for user in (approver, analyst):
            client.force_login(user)
            assert client.get(url).status_code == 403
            assert client.get(reverse(f"admin:campaigns_{page}_changelist")).status_code == 200

    def test_an_outsider_is_sent_to_the_login(self, client, outsider, batch):
        client.force_login(outsider)
        response = client.get(reverse("admin:campaigns_batch_change", args=[batch.pk]))
        assert response.status_code == 302 and "/login/" in response.url

    def test_the_review_page_shows_approval_only_to_approvers(self, client, batch, marketer, approver, analyst):
        url = reverse("admin:campaigns_batch_change", args=[batch.pk])
        client.force_login(approver)
        page = client.get(url).content.decode()
        assert 'id="approve"' in page and 'id="n-recipients"' in page and "Audit log" in page
        for user in (marketer, analyst):
            client.force_login(user)
            page = client.get(url).content.decode()
            assert 'id="approve"' not in page and 'id="n-recipients"' in page

    def test_an_approver_approves_through_the_page(self, client, batch, approver):
        client.force_login(approver)
        url = reverse("admin:campaigns_batch_decide", args=[batch.pk])
        client.post(url, {"decision": "approve", "comment": "ok"})
        assert Batch.objects.get(pk=batch.pk).status == "approved"

    def test_an_analyst_cannot_approve_through_the_page(self, client, batch, analyst):
        client.force_login(analyst)
        response = client.post(
            reverse("admin:campaigns_batch_decide", args=[batch.pk]), {"decision": "approve"}, follow=True
        )
        assert Batch.objects.get(pk=batch.pk).status == "generated"
        assert "approve permission" in response.content.decode()

    def test_a_marketer_generates_from_the_campaign_page(self, client, campaign, active_model, marketer):
        client.force_login(marketer)
        response = client.post(reverse("admin:campaigns_campaign_generate", args=[campaign.pk]))
        batch = Batch.objects.get(campaign=campaign)
        assert response.url == reverse("admin:campaigns_batch_change", args=[batch.pk])

    def test_an_analyst_cannot_generate(self, client, campaign, active_model, analyst):
        client.force_login(analyst)
        client.post(reverse("admin:campaigns_campaign_generate", args=[campaign.pk]))
        assert not Batch.objects.exists()


@pytest.mark.django_db
class TestBuilderPages:
    def test_the_live_count(self, client, marketer, shop):
        client.force_login(marketer)
        url = reverse("admin:campaigns_audience_count")
        rules = {"match": "all", "rules": [{"field": "frequency", "op": "gte", "value": 1, "days": 365}]}
        data = client.post(url, json.dumps({"rules": rules}), content_type="application/json").json()
        assert data == {
            "total": 60,
            "contactable": 56,
            "excluded": {"no_consent": 2, "unsubscribed": 1, "suppressed": 1, "no_email": 0},
        }

    def test_the_live_count_names_a_bad_rule(self, client, marketer, shop):
        client.force_login(marketer)
        rules = {"match": "all", "rules": [{"field": "frequency", "op": "gte", "value": ""}]}
        response = client.post(
            reverse("admin:campaigns_audience_count"), json.dumps({"rules": rules}), content_type="application/json"
        )
        assert response.status_code == 400 and "rules.rules[0].value" in response.json()["error"]

    def test_a_bad_code_file_is_reported_on_the_page(self, client, marketer):
        pool = promotion(name="pool", code_mode="pool", shared_code="")
        client.force_login(marketer)
        upload = SimpleUploadedFile("codes.csv", b"OK-CODE-1\nbad code\n")
        response = client.post(
            reverse("admin:campaigns_promotion_codes_upload", args=[pool.pk]), {"file": upload}, follow=True
        )
        assert "Line 2: 'bad code' is not a code" in html.unescape(response.content.decode())
        assert pool.codes.count() == 0

    def test_the_promotion_page_says_why_it_cannot_be_offered(self, client, marketer):
        pool = promotion(name="pool", code_mode="pool", shared_code="")
        client.force_login(marketer)
        page = client.get(reverse("admin:campaigns_promotion_change", args=[pool.pk])).content.decode()
        assert "code pool is empty" in page


@pytest.mark.django_db
class TestCustomerLinks:
    def test_a_tracked_link_redirects_to_the_item(self, client, batch, settings):
        row = batch.recipients.filter(outcome="recipient").first()
        item_id = row.items[0]["item_id"]
        settings.SHOP_ITEM_URL = "https://shop.example.com/items/{external_id}"
        response = client.get(reverse("campaigns:click", args=[links.click_token(row.id, item_id)]))
        assert response.status_code == 302 and response.url.startswith("https://shop.example.com/items/")

    def test_a_forged_or_foreign_link_is_not_found(self, client, batch):
        row = batch.recipients.filter(outcome="recipient").first()
        assert client.get(reverse("campaigns:click", args=["forged-token"])).status_code == 404
        not_shown = 10**9
        assert client.get(reverse("campaigns:click", args=[links.click_token(row.id, not_shown)])).status_code == 404

    def test_a_get_never_unsubscribes(self, client, batch):
        row = sent_row(batch)
        url = reverse("campaigns:unsubscribe", args=[links.unsubscribe_token(row.id)])
        assert client.get(url).status_code == 200
        assert Customer.objects.get(pk=row.customer_id).unsubscribed_at is None
        client.post(url)
        assert Customer.objects.get(pk=row.customer_id).unsubscribed_at is not None

    def test_one_click_unsubscribe(self, client, batch):
        row = sent_row(batch)
        url = reverse("campaigns:unsubscribe", args=[links.unsubscribe_token(row.id)])
        response = client.post(url, {"List-Unsubscribe": "One-Click"})
        assert response.status_code == 200 and response.content == b"unsubscribed"
        assert not Customer.objects.contactable().filter(pk=row.customer_id).exists()
