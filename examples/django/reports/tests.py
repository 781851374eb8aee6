"""The views without Herald (its client mocked): cookies, owners, idempotency keys, login.
Run: examples/django/.venv/bin/python examples/django/manage.py test reports (make test does)."""

import tempfile
from unittest import mock

import jwt
from django.contrib.auth import get_user_model
from django.test import TestCase, override_settings

import herald
from reports import views

SECRET = b"0123456789abcdef0123456789abcdef-views"
KEY = "0123456789abcdef0123456789abcdef"


class ViewsTest(TestCase):
    def setUp(self):
        secret = tempfile.NamedTemporaryFile(delete=False)
        secret.write(SECRET + b"\n")
        secret.close()
        self.settings = override_settings(HERALD_READ_TOKEN_SECRET_FILE=secret.name, HERALD_READ_TOKEN_TTL=120,
                                          HERALD_URL="http://herald.invalid",
                                          PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"])
        self.settings.enable()
        self.addCleanup(self.settings.disable)
        self.user = get_user_model().objects.create_user("alice", password="pw")
        self.herald = mock.create_autospec(herald.Herald, instance=True)
        self.herald.prefix = "/jobs"
        self.herald.jobs.return_value = []
        patcher = mock.patch.object(views, "client", return_value=self.herald)
        patcher.start()
        self.addCleanup(patcher.stop)

    def test_anonymous_users_are_sent_to_the_login(self):
        response = self.client.get("/")
        self.assertEqual(response.status_code, 302)
        self.assertTrue(response["Location"].startswith("/accounts/login/"))
        self.assertNotIn("herald_token", response.cookies)

    def test_the_page_lists_the_users_jobs_and_sets_a_read_token_for_them(self):
        self.client.force_login(self.user)
        response = self.client.get("/")
        self.assertEqual(response.status_code, 200)
        self.herald.jobs.assert_called_once_with(kind="report", owner=f"user-{self.user.pk}", limit=20)
        cookie = response.cookies["herald_token"]
        self.assertTrue(cookie["httponly"])
        self.assertEqual(cookie["samesite"], "Lax")
        self.assertEqual(cookie["path"], "/jobs")
        self.assertEqual(cookie["max-age"], 120)
        self.assertFalse(cookie["secure"])
        claims = jwt.decode(cookie.value, SECRET, algorithms=["HS256"])
        self.assertEqual(claims["sub"], f"user-{self.user.pk}")
        self.assertEqual(claims["exp"] - claims["iat"], 120)
        self.assertRegex(response.content.decode(), r'name="idempotency_key" value="[0-9a-f]{32}"')

    def test_over_tls_the_cookie_is_secure(self):
        self.client.force_login(self.user)
        response = self.client.get("/", headers={"X-Forwarded-Proto": "https"})
        self.assertTrue(response.cookies["herald_token"]["secure"])

    def test_generate_submits_with_the_owner_and_the_forms_key(self):
        self.client.force_login(self.user)
        response = self.client.post("/reports/generate", {"idempotency_key": KEY, "month": "2026-11"})
        self.assertEqual(response.status_code, 302)
        owner = f"user-{self.user.pk}"
        self.herald.submit.assert_called_once_with("report", {"month": "2026-11"}, owner=owner,
                                                   idempotency_key=f"{owner}:{KEY}")

    def test_generate_refuses_a_missing_key_or_a_bad_month(self):
        self.client.force_login(self.user)
        for data in ({"month": "2026-11"}, {"idempotency_key": "x", "month": "2026-11"},
                     {"idempotency_key": KEY, "month": "2026-13"}):
            self.assertEqual(self.client.post("/reports/generate", data).status_code, 400, data)
        self.herald.submit.assert_not_called()
        self.assertEqual(self.client.get("/reports/generate").status_code, 405)

    def test_a_herald_error_is_shown_on_the_page(self):
        self.herald.submit.side_effect = herald.HeraldError(503, "service_unavailable", "state directory full")
        self.client.force_login(self.user)
        response = self.client.post("/reports/generate", {"idempotency_key": KEY, "month": "2026-11"}, follow=True)
        self.assertContains(response, "Could not start the report: state directory full (service_unavailable)")

    def test_the_token_is_renewed_by_post_and_forgotten_at_logout(self):
        self.client.force_login(self.user)
        self.assertEqual(self.client.get("/reports/token").status_code, 405)
        response = self.client.post("/reports/token")
        self.assertEqual(response.status_code, 204)
        self.assertIn("herald_token", response.cookies)
        response = self.client.post("/accounts/logout/")
        self.assertEqual(response.cookies["herald_token"].value, "")
        self.assertEqual(response.cookies["herald_token"]["path"], "/jobs")
