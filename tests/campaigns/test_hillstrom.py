"""Hillstrom's e-mail test imported as a past campaign: the dashboard's figures are the experiment's truth."""

import math

import pandas as pd
import pytest
from django.core.management import CommandError, call_command

from campaigns.models import Batch, Campaign, Conversion, Recipient
from campaigns.services.hillstrom import CAMPAIGN
from campaigns.services.uplift_stats import groups_compare
from shop.models import Customer
from tests.conftest import shared_file

pytestmark = pytest.mark.django_db


def wald(frame, segment):
    treated, control = frame[frame.segment == segment].visit, frame[frame.segment == "No E-Mail"].visit
    p_t, p_c = treated.mean(), control.mean()
    se = math.sqrt(p_t * (1 - p_t) / len(treated) + p_c * (1 - p_c) / len(control))
    return p_t - p_c, p_t - p_c - 1.959964 * se, p_t - p_c + 1.959964 * se


@pytest.mark.slow  # about 35 s: the import writes 64,000 customers and 85,000 recipients
def test_the_imported_test_shows_the_experiments_visit_uplift(admin_client):
    path = shared_file("hillstrom/hillstrom.csv")
    frame = pd.read_csv(path)
    # when
    call_command("import_data", "hillstrom", str(path), verbosity=0)
    # then one past campaign, two batches with the No E-Mail group as the holdout of both
    campaign = Campaign.objects.get(name=CAMPAIGN)
    assert Customer.objects.filter(external_id__startswith="hillstrom-").count() == 64000
    mens, womens = Batch.objects.filter(campaign=campaign).order_by("number")
    assert mens.recipients.filter(outcome=Recipient.Outcome.RECIPIENT).count() == 21307
    assert womens.recipients.filter(outcome=Recipient.Outcome.RECIPIENT).count() == 21387
    assert mens.recipients.filter(reason=Recipient.Reason.HOLDOUT).count() == 21306
    # and the visit uplift with its interval is the ground truth, +0.0766 and +0.0452
    for batch, segment, truth in ((mens, "Mens E-Mail", 0.0766), (womens, "Womens E-Mail", 0.0452)):
        response = groups_compare(batch.uplift.groups).response
        assert round(response.estimate, 4) == truth
        estimate, low, high = wald(frame, segment)
        assert (response.estimate, response.low, response.high) == (
            pytest.approx(estimate, abs=1e-9),
            pytest.approx(low, abs=1e-6),
            pytest.approx(high, abs=1e-6),
        )
        assert response.verdict == f"+{truth * 100:.1f} points, significant"
    # and so does the dashboard, the first page after login
    page = admin_client.get("/", {"campaign": campaign.id}).content.decode()
    assert "+7.7 pts" in page and "+4.5 pts" in page and "+7.7 points, significant" in page
    # purchases within 3 days of the send are credited to it (no delivery reports: the send counts)
    assert Conversion.objects.filter(batch__campaign=campaign, rule="delivery").exists()
    assert mens.daily_stats.filter(sent=21307).exists()
    # a second import is refused
    with pytest.raises(CommandError, match="already imported"):
        call_command("import_data", "hillstrom", str(path), verbosity=0)


def test_a_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(CommandError, match="no such file"):
        call_command("import_data", "hillstrom", str(tmp_path / "nope.csv"), verbosity=0)
    with pytest.raises(CommandError, match="needs the file"):
        call_command("import_data", "hillstrom", verbosity=0)
