from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.template.defaultfilters import floatformat
from django.utils import timezone

from campaigns.eligibility import hashed_draw
from campaigns.messages import recipient_message
from campaigns.models import Batch, BatchEvent, Campaign, PromotionCode, Recipient
from campaigns.models.campaigns import DEFAULT_BODY
from campaigns.services.batches import batch_approve, batch_reject, batch_request
from campaigns.services.codes import codes_generate
from campaigns.services.generation import batch_generate
from recommender import serving
from recommender.models import ModelVersion
from recommender.services import modelversion_activate, modelversion_train
from shop.models import Customer
from tests.campaigns.conftest import promotion
from tests.factories import UserFactory

Reason = Recipient.Reason


def generate(campaign, by):
    batch = Batch.objects.get(pk=batch_request(campaign=campaign, by=by))
    batch_generate(batch_id=batch.id)
    batch.refresh_from_db()
    return batch


@pytest.mark.django_db
class TestGeneration:
    def test_it_gives_every_customer_a_promotion_or_a_reason(self, campaign, active_model, marketer):
        # given a second, pool-coded promotion on hair products
        pool = promotion(name="5 off hair", kind="amount_off", value=5, categories=["Beauty > Hair"], code_mode="pool")
        codes_generate(promotion=pool, count=100)
        campaign.promotions.add(pool)
        # when
        batch = generate(campaign, marketer)
        # then
        assert batch.status == Batch.Status.GENERATED, batch.error
        rows = {r.customer.external_id: r for r in batch.recipients.select_related("customer", "promotion")}
        assert set(rows) == set(Customer.objects.values_list("external_id", flat=True))
        assert (rows["c00"].reason, rows["c01"].reason) == (Reason.NO_CONSENT, Reason.NO_CONSENT)
        assert (rows["c02"].reason, rows["c03"].reason) == (Reason.UNSUBSCRIBED, Reason.SUPPRESSED)
        recipients = [r for r in rows.values() if r.outcome == Recipient.Outcome.RECIPIENT]
        assert recipients and all(r.reason == "" for r in recipients)
        for r in recipients:
            eligible = set(r.promotion.eligible_items().filter(in_stock=True, active=True).values_list("id", flat=True))
            assert r.items and {e["item_id"] for e in r.items} <= eligible
            subject, html, _text = recipient_message(r)
            assert subject and r.code in html and not r.render_error
        pool_codes = [r.code for r in recipients if r.promotion_id == pool.id]
        assert len(pool_codes) == len(set(pool_codes)) == PromotionCode.objects.filter(recipient__isnull=False).count()
        assert all(r.code == "SKIN15" for r in recipients if r.promotion_id != pool.id)
        assert batch.model_version == active_model
        assert batch.summary["recipients"] == len(recipients)
        assert [e.action for e in batch.events.all()] == ["requested", "generated"]

    def test_the_holdout_is_drawn_among_reachable_customers_and_gets_no_code(self, campaign, active_model, marketer):
        batch = generate(campaign, marketer)
        holdout = batch.recipients.filter(reason=Reason.HOLDOUT)
        assert holdout.exists()
        assert not holdout.filter(customer__marketing_consent=False).exists()
        assert all(r.code == "" and r.promotion_id for r in holdout)  # what they would have got is kept

    def test_the_holdout_draw_matches_the_setting(self):
        draws = [hashed_draw(12345, customer) for customer in range(20_000)]
        assert abs(sum(d < 0.2 for d in draws) / len(draws) - 0.2) < 0.01

    def test_an_empty_pool_excludes_with_its_reason(self, campaign, active_model, marketer):
        campaign.promotions.clear()
        pool = promotion(name="pool", code_mode="pool", shared_code="", categories=[])
        codes_generate(promotion=pool, count=5)
        campaign.promotions.add(pool)
        batch = generate(campaign, marketer)
        assert batch.recipients.filter(outcome="recipient").count() == 5
        assert batch.recipients.filter(reason=Reason.POOL_EXHAUSTED).count() > 0

    def test_the_frequency_cap_counts_messages_of_other_campaigns(self, campaign, active_model, marketer, approver):
        first = generate(campaign, marketer)
        batch_approve(batch=first, by=approver)
        capped = first.recipients.filter(outcome="recipient").values_list("customer_id", flat=True)
        other = Campaign.objects.create(
            name="Summer", audience=campaign.audience, created_by=marketer, frequency_cap_messages=1
        )
        other.promotions.set(campaign.promotions.all())
        second = generate(other, marketer)
        assert set(second.recipients.filter(reason=Reason.FREQUENCY_CAP).values_list("customer_id", flat=True)) == set(
            capped
        )

    def test_no_eligible_item_in_stock_is_a_reason(self, campaign, active_model, marketer, shop):
        campaign.promotions.clear()
        only_item = shop["items"][5]  # out of stock
        solo = promotion(name="one item", categories=[])
        solo.items.add(only_item)
        campaign.promotions.add(solo)
        batch = generate(campaign, marketer)
        assert batch.recipients.filter(outcome="recipient").count() == 0
        assert batch.recipients.filter(reason=Reason.NO_ELIGIBLE_ITEM).count() > 0

    def test_a_template_failing_for_recipients_blocks_approval(self, campaign, active_model, marketer, approver):
        campaign.items_per_message = 2
        campaign.body_template = "<p>{{ items.2.title }}</p>"  # only two items: the third does not exist
        campaign.save()
        batch = generate(campaign, marketer)
        assert batch.render_failures == batch.summary["recipients"] > 0
        assert "items.2.title" in batch.summary["render_failed"][0]["error"]
        with pytest.raises(PermissionDenied, match="template failed"):
            batch_approve(batch=batch, by=approver)

    def test_without_an_active_model_the_request_is_refused(self, campaign, marketer):
        with pytest.raises(ValidationError, match="No model version is active"):
            batch_request(campaign=campaign, by=marketer)

    def test_a_resumed_batch_keeps_the_model_version_it_started_with(self, campaign, active_model, marketer):
        # given a batch whose first delivery recorded the active version, then died
        batch = Batch.objects.get(pk=batch_request(campaign=campaign, by=marketer))
        Batch.objects.filter(id=batch.id).update(model_version=active_model)
        # and another version activated meanwhile
        newer = modelversion_train(version_id=ModelVersion.objects.create(algorithm="pop").id)
        modelversion_activate(version=newer, by=None)
        # when the redelivered task generates it
        batch_generate(batch_id=batch.id)
        # then it served from the version it started with
        batch.refresh_from_db()
        assert batch.status == Batch.Status.GENERATED, batch.error
        assert batch.model_version == active_model != ModelVersion.objects.active().get()
        row = batch.recipients.filter(outcome=Recipient.Outcome.RECIPIENT).first()
        for version in (active_model, newer):
            served = serving.served_model(version_id=version.id)
            (chunk,) = serving.serve_chunks(served, customer_ids=[row.customer_id])
            shown = [float(chunk.proba[0, served.column[e["item_id"]]]) for e in row.items]
            assert (shown == [e["probability"] for e in row.items]) == (version == active_model)

    def test_the_difference_from_the_previous_batch(self, campaign, active_model, marketer):
        generate(campaign, marketer)
        second = generate(campaign, marketer)
        difference = second.summary["difference"]
        assert difference["previous_batch"] == 1
        assert difference["added"] >= 0 and difference["removed"] >= 0


@pytest.mark.django_db
class TestApproval:
    def test_an_approver_approves_with_a_comment(self, campaign, active_model, marketer, approver):
        batch = generate(campaign, marketer)
        batch_approve(batch=batch, by=approver, comment="looks right")
        batch.refresh_from_db()
        assert (batch.status, batch.decided_by, batch.decision_comment) == ("approved", approver, "looks right")
        assert batch.events.last().action == BatchEvent.Action.APPROVED

    def test_the_creator_cannot_approve_their_own(self, campaign, active_model, roles):
        # given an approver who also generated the batch
        both = UserFactory(username="both")
        both.groups.add(roles["approver"], roles["marketer"])
        batch = generate(campaign, both)
        with pytest.raises(PermissionDenied, match="Four eyes"):
            batch_approve(batch=batch, by=both)
        assert Batch.objects.get(pk=batch.pk).status == "generated"

    def test_a_marketer_cannot_approve(self, campaign, active_model, marketer, roles):
        other = UserFactory(username="other-marketer")
        other.groups.add(roles["marketer"])
        batch = generate(campaign, marketer)
        with pytest.raises(PermissionDenied, match="approve permission"):
            batch_approve(batch=batch, by=other)

    def test_a_rejection_needs_a_comment(self, campaign, active_model, marketer, approver):
        batch = generate(campaign, marketer)
        with pytest.raises(ValidationError, match="comment"):
            batch_reject(batch=batch, by=approver, comment=" ")
        batch_reject(batch=batch, by=approver, comment="wrong audience")
        assert Batch.objects.get(pk=batch.pk).status == "rejected"

    @pytest.mark.parametrize("change", ["campaign", "promotion", "promotion_items", "audience"])
    def test_a_change_after_approval_voids_it(self, campaign, active_model, marketer, approver, shop, change):
        batch = generate(campaign, marketer)
        batch_approve(batch=batch, by=approver)
        # when
        offered = campaign.promotions.first()
        if change == "campaign":
            campaign.subject_template = "New subject"
            campaign.save()
        elif change == "promotion":
            offered.value = 20
            offered.save()
        elif change == "promotion_items":
            offered.excluded_items.add(shop["items"][0])
        else:
            campaign.audience.rules = {"match": "all", "rules": [{"field": "time_zone", "op": "eq", "value": "UTC"}]}
            campaign.audience.save()
        # then
        batch.refresh_from_db()
        assert batch.status == Batch.Status.VOIDED
        assert batch.events.last().action == BatchEvent.Action.VOIDED

    def test_a_batch_in_review_goes_stale_when_the_campaign_changes(self, campaign, active_model, marketer, approver):
        batch = generate(campaign, marketer)
        campaign.holdout_percent = 5
        campaign.save()
        with pytest.raises(PermissionDenied, match="changed after"):
            batch_approve(batch=batch, by=approver)


@pytest.mark.django_db
class TestPromotionUsability:
    def test_an_ended_promotion_says_so(self):
        ended = promotion(starts_at=timezone.now() - timedelta(days=9), ends_at=timezone.now() - timedelta(days=1))
        assert "ended on" in ended.unusable_reason()

    def test_a_spent_budget_says_so(self):
        spent = promotion(max_redemptions=10, redemptions_used=10)
        assert "budget of 10 redemptions" in spent.unusable_reason()
        money = promotion(max_discount_total=100, discount_used=100)
        assert "discount budget" in money.unusable_reason()

    def test_an_empty_pool_says_so(self):
        assert "code pool is empty" in promotion(code_mode="pool", shared_code="").unusable_reason()

    def test_an_unusable_promotion_is_skipped_and_none_usable_refuses(self, campaign, active_model, marketer):
        campaign.promotions.update(
            ends_at=timezone.now() - timedelta(hours=1), starts_at=timezone.now() - timedelta(days=2)
        )
        with pytest.raises(ValidationError, match="None of the campaign's promotions"):
            batch_request(campaign=campaign, by=marketer)


@pytest.mark.django_db
class TestItemKinds:
    @pytest.mark.parametrize("kinds", ["buy_again", "new", "both"])
    def test_a_campaign_recommends_the_kinds_it_chose_and_each_item_says_which(
        self, campaign, active_model, marketer, kinds
    ):
        # given a campaign choosing buy-again items, new ones, or both, whose message says why each item
        campaign.item_kinds = kinds
        campaign.body_template = DEFAULT_BODY.replace("{{ item.price }}", "{{ item.price }} {{ item.reason }}")
        campaign.save()
        # when a batch is generated
        batch = generate(campaign, marketer)
        # then every item shown has the kind asked for, and its kind matches the customer's purchases
        assert batch.status == Batch.Status.GENERATED, batch.error
        shown = [(r, e) for r in batch.recipients.exclude(items=[]) for e in r.items]
        assert shown
        for recipient, entry in shown:
            bought = recipient.customer.events.filter(type="purchase", item_id=entry["item_id"]).exists()
            assert entry["kind"] == ("buy_again" if bought else "new")
            # and says why: how often and when for a buy-again item, what led to (or is behind) a new one
            if bought:
                assert entry["reason"].startswith(("you buy this about every", "you bought this once"))
                assert entry["because_item_id"] is None
            elif entry["because_item_id"]:
                assert entry["reason"] == "because you bought"
            else:
                assert entry["reason"].startswith("popular with customers")
        found = {entry["kind"] for _recipient, entry in shown}
        assert found == {"buy_again", "new"} if kinds == "both" else found == {kinds}
        assert batch.settings.item_kinds == kinds

    def test_a_message_that_shows_no_reasons_skips_the_removal_pass_for_new_items(
        self, campaign, active_model, marketer
    ):
        # given the default template, which shows no item's reason
        assert "reason" not in campaign.body_template and "because" not in campaign.body_template
        # when a batch is generated
        batch = generate(campaign, marketer)
        # then new items carry no reason (none was computed), buy-again ones their cheap pattern
        shown = [e for r in batch.recipients.exclude(items=[]) for e in r.items]
        new = [e for e in shown if e["kind"] == "new"]
        assert new and all(e["reason"] == "" and e["because_item_id"] is None for e in new)
        again = [e for e in shown if e["kind"] == "buy_again"]
        assert again and all(e["reason"].startswith(("you buy", "you bought")) for e in again)

    def test_the_recipient_page_says_each_items_kind_and_its_probability_in_percent(
        self, client, campaign, active_model, marketer
    ):
        batch = generate(campaign, marketer)
        recipient = batch.recipients.exclude(items=[]).first()
        client.force_login(marketer)
        page = client.get(f"/admin/campaigns/recipient/{recipient.pk}/change/").content.decode()
        first = recipient.items[0]
        assert f"<td>{floatformat(100 * first['probability'], '-2')}%</td>" in page
        assert ("buy again (bought before)" if first["kind"] == "buy_again" else "new to them (never bought)") in page
