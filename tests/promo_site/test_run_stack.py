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
