import pytest
from django.test import override_settings

PASSWORD = "correct horse battery staple"  # tests.factories.UserFactory's


def sign_in(client, password, address):
    return client.post("/admin/login/", {"username": "approver", "password": password}, REMOTE_ADDR=address)


@pytest.mark.django_db
class TestLoginLockout:
    def test_it_locks_a_username_out_from_an_address_after_ten_failures(self, client, approver):
        # given
        failures = [sign_in(client, "wrong", "203.0.113.7").status_code for _ in range(10)]
        # when
        response = sign_in(client, PASSWORD, "203.0.113.7")
        # then: the login page again with its error, and the tenth failure is told about the lockout
        assert failures == [200] * 9 + [429]
        assert response.status_code == 429
        assert b"Too many wrong passwords in a row for approver" in response.content
        assert "_auth_user_id" not in client.session

    def test_the_right_password_from_another_address_still_works(self, client, approver):
        for _ in range(10):
            sign_in(client, "wrong", "203.0.113.7")

        response = sign_in(client, PASSWORD, "198.51.100.1")

        assert response.status_code == 302 and client.session["_auth_user_id"] == str(approver.pk)

    def test_a_success_starts_the_count_again(self, client, approver):
        for _ in range(9):
            sign_in(client, "wrong", "203.0.113.7")
        assert sign_in(client, PASSWORD, "203.0.113.7").status_code == 302
        client.logout()

        failures = [sign_in(client, "wrong", "203.0.113.7").status_code for _ in range(9)]

        assert failures == [200] * 9 and sign_in(client, PASSWORD, "203.0.113.7").status_code == 302

    @override_settings(BEHIND_TLS_PROXY=True)
    def test_behind_the_proxy_it_counts_the_address_the_proxy_saw(self, client, approver):
        for _ in range(10):
            client.post(
                "/admin/login/",
                {"username": "approver", "password": "wrong"},
                REMOTE_ADDR="10.0.0.1",
                HTTP_X_FORWARDED_FOR="1.2.3.4, 203.0.113.7",
            )

        elsewhere = sign_in(client, PASSWORD, "10.0.0.1")  # same proxy, no forwarded address: someone else

        assert elsewhere.status_code == 302
