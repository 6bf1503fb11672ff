"""The right of access and erasure: an admin exports or erases one customer, each with an audit row."""

import csv
import json

import pandas as pd
import pytest
from django.core.files.base import ContentFile
from django.urls import reverse

from campaigns.models import MessageEvent, Recipient
from shop.models import Customer, CustomerAudit, Event, EventType, ImportRun
from shop.services.imports import import_run_execute
from shop.services.upserts import customers_upsert
from tests.factories import ConversionFactory, CustomerFactory, EventFactory, MessageEventFactory, RecipientFactory

CHANGELIST = reverse("admin:shop_customer_changelist")


@pytest.fixture
def ann(db):
    """A customer with a history: a purchase, a "not interested", a sent message with its events, a conversion."""
    ann = CustomerFactory(
        external_id="ann",
        email="ann@example.test",
        name="Ann Example",
        demographics={"age": 34},
        attributes={"vip": True},
        marketing_consent=True,
    )
    message = RecipientFactory(customer=ann, subject="Ann, 15% off for you", body_html="<p>Hi Ann</p>")
    MessageEventFactory(recipient=message, kind=MessageEvent.Kind.CLICKED, user_agent="Ann's phone")
    ConversionFactory(recipient=message)
    EventFactory(customer=ann, type=EventType.NOT_INTERESTED, value=None)
    return ann


def uploaded(name, content):
    """An upload imported as from the admin (in this process): its ImportRun, with its report."""
    run = ImportRun(kind="events", options={})
    run.file.save(name, ContentFile(content.encode() if isinstance(content, str) else content))
    import_run_execute(run_id=run.id)
    run.refresh_from_db()
    assert run.status == ImportRun.Status.DONE, run.error
    return run


def report_lines(run):
    with open(run.report.path, newline="") as handle:
        return sorted({int(row[0]) for row in list(csv.reader(handle))[1:]})


def act(client, action, customers, **extra):
    return client.post(CHANGELIST, {"action": action, "_selected_action": [c.pk for c in customers], **extra})


@pytest.mark.django_db
class TestExport:
    def test_it_downloads_everything_held_about_one_customer(self, client, admin_user, ann):
        # given
        client.force_login(admin_user)
        # when
        response = act(client, "export_personal_data", [ann])
        # then a JSON download with the customer, their events and feedback, messages and what followed
        assert response.status_code == 200
        assert response["Content-Disposition"] == f'attachment; filename="customer-{ann.pk}.json"'
        data = json.loads(response.content)
        assert data["customer"]["email"] == "ann@example.test" and data["customer"]["demographics"] == {"age": 34}
        assert sorted(e["type"] for e in data["events"]) == ["not_interested", "purchase"]
        assert [e["type"] for e in data["feedback"]] == ["not_interested"]
        assert [m["subject"] for m in data["messages"]] == ["Ann, 15% off for you"]
        assert data["message_events"][0]["kind"] == "clicked"
        assert len(data["conversions"]) == 1
        # and an audit row says who exported what
        audit = CustomerAudit.objects.get()
        assert (audit.customer, audit.action, audit.by) == (ann, "exported", admin_user)
        assert audit.detail["messages"] == 1 and audit.detail["events"] == 2


@pytest.mark.django_db
class TestErase:
    def test_it_asks_first_and_changes_nothing(self, client, admin_user, ann):
        client.force_login(admin_user)
        response = act(client, "erase_personal_data", [ann])
        assert response.status_code == 200 and b"Erase, for good" in response.content
        assert Customer.objects.get(pk=ann.pk).email == "ann@example.test" and not CustomerAudit.objects.exists()

    def test_it_blanks_the_person_and_keeps_a_tombstone(self, client, admin_user, ann):
        # given
        client.force_login(admin_user)
        # when
        response = act(client, "erase_personal_data", [ann], confirmed="yes")
        # then the personal fields are gone; the external id stays, never to be mailed
        assert response.status_code == 302
        ann.refresh_from_db()
        assert (ann.email, ann.name, ann.attributes, ann.demographics) == ("", "", {}, {})
        assert ann.external_id == "ann" and ann.erased_at is not None
        assert ann.suppressed and not ann.marketing_consent
        assert not Customer.objects.contactable().filter(pk=ann.pk).exists()
        # and the stored messages say nothing about them; their events stay, pseudonymous
        message = Recipient.objects.get(customer=ann)
        assert (message.subject, message.body_html) == ("", "")
        assert MessageEvent.objects.get(recipient=message).user_agent == ""
        assert Event.objects.filter(customer=ann).count() == 2  # the converting purchase and "not interested"
        # and the audit row says who erased what
        audit = CustomerAudit.objects.get()
        assert (audit.action, audit.by) == ("erased", admin_user)
        assert audit.detail == {
            "customer": 1,
            "import_report_lines": 0,
            "message_bodies": 1,
            "message_event_details": 1,
        }

    def test_it_removes_the_lines_of_the_customers_rows_from_import_reports(
        self, client, admin_user, ann, settings, tmp_path
    ):
        # given two uploads whose reports name rows of Ann and of Bob: a CSV with a bad date, a row of the wrong
        # width and a missing item for Ann, and a Parquet file with a bad date for each
        settings.MEDIA_ROOT = tmp_path
        csv_run = uploaded(
            "events.csv",
            "customer,type,item,occurred_at\n"
            "ann,purchase,i1,2024-01-02\n"  # stored: no report line
            "ann,view,i2,not a date\n"  # line 3
            "bob,view,i2,not a date\n"  # line 4
            "ann,view,i3,2024-01-02,extra\n"  # line 5: 5 fields, reported without its customer
            "ann,view,,2024-01-02\n"  # line 6
            "bob,view,i3,2024-01-02,extra\n",  # line 7
        )
        frame = pd.DataFrame(
            {"customer": ["bob", "ann"], "type": ["view", "view"], "item": ["i1", "i1"], "occurred_at": ["x", "y"]}
        )
        parquet_run = uploaded("events.parquet", frame.to_parquet(index=False))
        assert report_lines(csv_run) == [3, 4, 5, 6, 7] and report_lines(parquet_run) == [2, 3]
        # when an admin erases Ann
        client.force_login(admin_user)
        act(client, "erase_personal_data", [ann], confirmed="yes")
        # then only Bob's lines are left in the reports, and the audit row counts Ann's
        assert report_lines(csv_run) == [4, 7] and report_lines(parquet_run) == [2]
        with open(csv_run.report.path, newline="") as handle:
            assert next(csv.reader(handle)) == ["line", "column", "value", "reason"]
        assert CustomerAudit.objects.get().detail["import_report_lines"] == 4

    def test_the_shop_cannot_bring_an_erased_customer_back(self, client, admin_user, ann):
        client.force_login(admin_user)
        act(client, "erase_personal_data", [ann], confirmed="yes")
        # when the shop sends the customer again
        customers_upsert(rows=[{"external_id": "ann", "email": "ann@example.test", "name": "Ann Example"}])
        # then the tombstone stays blank, and there is still one "ann"
        ann.refresh_from_db()
        assert (ann.email, ann.name) == ("", "") and Customer.objects.filter(external_id="ann").count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("action", ["export_personal_data", "erase_personal_data"])
def test_it_is_for_admins_only(client, marketer, analyst, ann, action):
    for user in (marketer, analyst):
        # when
        client.force_login(user)
        response = act(client, action, [ann], confirmed="yes")
        # then the action is not offered (the list answers "no action selected") and nothing happens
        assert "Content-Disposition" not in response and b"Erase, for good" not in response.content
        assert Customer.objects.get(pk=ann.pk).email == "ann@example.test" and not CustomerAudit.objects.exists()
