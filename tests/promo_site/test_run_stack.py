from promo_site.management.commands.run_stack import Command, demo_webhook_secret


def test_it_makes_the_demo_webhook_secret_once(tmp_path):
    first = demo_webhook_secret(tmp_path)

    assert first.startswith("postmark:") and len(first) > 30
    assert demo_webhook_secret(tmp_path) == first
    assert (tmp_path / "webhook-secret.txt").stat().st_mode & 0o777 == 0o600
    assert demo_webhook_secret(tmp_path / "elsewhere") != first


def test_it_gives_its_processes_the_secret_unless_one_is_set(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    env = {}
    note = Command()._webhooks(env, "127.0.0.1:8000")
    assert env["ANYMAIL_WEBHOOK_SECRET"] == demo_webhook_secret(tmp_path)
    assert f"{env['ANYMAIL_WEBHOOK_SECRET']}@127.0.0.1:8000/anymail/postmark/tracking/" in note

    configured = {"ANYMAIL_WEBHOOK_SECRET": "ops:their-own"}
    assert Command()._webhooks(configured, "127.0.0.1:8000") == ""
    assert configured["ANYMAIL_WEBHOOK_SECRET"] == "ops:their-own"


def test_it_runs_the_demo_with_the_fake_provider(settings, tmp_path, monkeypatch):
    # given: no provider configured, so the fake Postmark is used
    settings.VAR_DIR = tmp_path
    monkeypatch.delenv("EMAIL_BACKEND", raising=False)
    monkeypatch.delenv("DEMO_MODE", raising=False)
    monkeypatch.delenv("SITE_URL", raising=False)
    commands = {}
    env, _note = Command()._mail(commands, "/bin")
    Command()._webhooks(env, "0.0.0.0:8000")
    # when
    note = Command()._demo(commands, env, "0.0.0.0:8000")
    # then: demo mode for every process, webhooks from the fake, and the simulated shop on the API
    assert env["DEMO_MODE"] == "1" and env["DEMO_TIME_SCALE"] == "1440"
    assert env["SITE_URL"] == "http://127.0.0.1:8000"
    assert commands["mail"][-2:] == ["--webhooks", "http://127.0.0.1:8000/anymail/postmark/tracking/"]
    assert commands["shop"][-3:] == ["simulate_shop", "--site", "http://127.0.0.1:8000"]
    assert "14 minutes of measurement" in note


def test_it_runs_no_demo_with_a_real_provider_or_when_turned_off(settings, tmp_path, monkeypatch):
    settings.VAR_DIR = tmp_path
    monkeypatch.setenv("EMAIL_BACKEND", "anymail.backends.postmark.EmailBackend")
    commands = {}
    env, _note = Command()._mail(commands, "/bin")
    assert Command()._demo(commands, env, "127.0.0.1:8000") == "" and "shop" not in commands
    assert "DEMO_MODE" not in env

    monkeypatch.delenv("EMAIL_BACKEND")
    monkeypatch.setenv("DEMO_MODE", "0")
    commands = {}
    env, _note = Command()._mail(commands, "/bin")
    assert Command()._demo(commands, env, "127.0.0.1:8000") == "" and "shop" not in commands
