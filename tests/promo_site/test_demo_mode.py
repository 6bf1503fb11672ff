import subprocess
import sys
from datetime import timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured

from promo_site import demo
from tests.conftest import REPO

FAKE = {"EMAIL_BACKEND": demo.POSTMARK_BACKEND, "POSTMARK_API_URL": "http://127.0.0.1:8025/"}


@pytest.fixture
def demo_settings(settings):
    settings.DEMO_MODE = True
    settings.DEMO_TIME_SCALE = 1440
    settings.EMAIL_BACKEND = FAKE["EMAIL_BACKEND"]
    settings.ANYMAIL = {**settings.ANYMAIL, "POSTMARK_API_URL": FAKE["POSTMARK_API_URL"]}
    return settings


def test_it_changes_no_window_outside_demo_mode(settings):
    settings.DEMO_MODE = False
    settings.MEASUREMENT_DAYS, settings.ATTRIBUTION_CLICK_DAYS, settings.ATTRIBUTION_DELIVERY_DAYS = 14, 7, 3
    assert demo.measurement_window() == timedelta(days=14)
    assert demo.click_window() == timedelta(days=7)
    assert demo.delivery_window() == timedelta(days=3)
    assert demo.stats_horizon() == timedelta(days=22)


def test_it_divides_every_window_by_the_time_scale_in_demo_mode(demo_settings):
    demo_settings.MEASUREMENT_DAYS, demo_settings.ATTRIBUTION_CLICK_DAYS = 14, 7
    demo_settings.ATTRIBUTION_DELIVERY_DAYS = 3
    assert demo.measurement_window() == timedelta(minutes=14)
    assert demo.click_window() == timedelta(minutes=7)
    assert demo.delivery_window() == timedelta(minutes=3)
    assert demo.stats_horizon() == timedelta(minutes=22)


def test_the_measurement_reads_its_windows_through_the_helper(demo_settings):
    from campaigns.services import attribution, stats

    assert attribution.click_window is demo.click_window and attribution.delivery_window is demo.delivery_window
    assert stats.measurement_window is demo.measurement_window and stats.stats_horizon is demo.stats_horizon


@pytest.mark.parametrize(
    "backend, url, says",
    [
        ("django.core.mail.backends.smtp.EmailBackend", "", "needs the fake Postmark"),
        (demo.POSTMARK_BACKEND, "", "the real Postmark"),
        (demo.POSTMARK_BACKEND, "https://api.postmarkapp.com/", "api.postmarkapp.com"),
    ],
)
def test_it_refuses_demo_mode_with_a_real_provider(demo_settings, backend, url, says):
    demo_settings.EMAIL_BACKEND = backend
    demo_settings.ANYMAIL = {**demo_settings.ANYMAIL, "POSTMARK_API_URL": url} if url else {}
    with pytest.raises(ImproperlyConfigured, match=says):
        demo.measurement_window()


def test_the_settings_refuse_demo_mode_with_a_real_provider():
    env = {"DEMO_MODE": "1", "DEBUG": "1", "EMAIL_BACKEND": demo.POSTMARK_BACKEND,
           "ANYMAIL_POSTMARK_API_URL": "https://api.postmarkapp.com/", "PATH": "/usr/bin:/bin"}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='promo_site.settings'; "
         "from django.conf import settings; settings.DEMO_MODE"],
        cwd=REPO, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode != 0
    assert "DEMO_MODE=1 needs the fake Postmark on loopback" in done.stderr
