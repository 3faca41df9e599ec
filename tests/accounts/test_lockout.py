"""django-axes lockout on (username, IP) with progressive cool-off, OTP failures counted, unlock command."""

from __future__ import annotations

import datetime as dt

import pytest
from axes.models import AccessAttempt
from django.core.management import call_command
from django.urls import reverse
from freezegun import freeze_time

from ghostcrm.accounts.lockout import cooloff_for
from ghostcrm.audit.models import AuditEvent
from tests.accounts.factories import PASSWORD
from tests.accounts.helpers import enrol, password_step, totp_code

pytestmark = pytest.mark.django_db
START = dt.datetime(2026, 11, 24, 9, 0, tzinfo=dt.UTC)


def _fail(client, email, times, **extra):
    return [password_step(client, email, "wrong-password-guess", **extra) for _ in range(times)]


def test_cooloff_grows_with_failures():
    assert cooloff_for(4) == dt.timedelta(0)
    assert cooloff_for(5) == dt.timedelta(minutes=15)
    assert cooloff_for(6) == dt.timedelta(minutes=30)
    assert cooloff_for(7) == dt.timedelta(hours=1)
    assert cooloff_for(50) == dt.timedelta(hours=24)


def test_five_failures_lock_for_fifteen_minutes_with_a_clear_message(client, staff_user):
    enrol(staff_user)
    with freeze_time(START) as clock:
        responses = _fail(client, staff_user.email, 5)
        assert [r.status_code for r in responses] == [200, 200, 200, 200, 429]
        locked = password_step(client, staff_user.email)  # even the right password is refused now
        assert locked.status_code == 429
        text = locked.content.decode()
        assert "Try again after 2026-11-24 09:15 UTC" in text
        assert locked["Retry-After"] == "900"
        assert "_gc_preauth" not in client.session

        clock.tick(dt.timedelta(minutes=14))
        assert password_step(client, staff_user.email).status_code == 429
        clock.tick(dt.timedelta(minutes=1, seconds=1))
        ok = password_step(client, staff_user.email)
        assert ok.status_code == 302 and ok.url == reverse("accounts:mfa")
    event = AuditEvent.objects.get(action="auth.lockout")
    assert event.after["failures"] == 5
    assert event.after["locked_until"].startswith("2026-11-24T09:15")
    assert event.ip_address == "127.0.0.1"
    assert event.target_id == str(staff_user.pk)
    denied = AuditEvent.objects.filter(action="auth.login.failure", outcome=AuditEvent.Outcome.DENIED)
    assert denied.count() >= 2  # attempts during the lock are refused and recorded


def test_further_failures_lock_longer(client, staff_user):
    with freeze_time(START) as clock:
        _fail(client, staff_user.email, 5)
        clock.tick(dt.timedelta(minutes=16))
        assert password_step(client, staff_user.email, "wrong-again-guess").status_code == 429  # 6th: 30 min
        clock.tick(dt.timedelta(minutes=29))
        assert password_step(client, staff_user.email).status_code == 429
        clock.tick(dt.timedelta(minutes=2))
        assert password_step(client, staff_user.email).status_code == 302
    # attempts refused during a lock are not counted: 5 + 1 real failures. The password step alone resets
    # nothing; a completed sign-in (both factors) does.
    assert AccessAttempt.objects.get().failures_since_start == 6
    assert AuditEvent.objects.filter(action="auth.lockout").count() == 2


def test_lock_is_per_username_and_address(client, staff_user, boss):
    with freeze_time(START):
        _fail(client, staff_user.email, 5)
        assert password_step(client, staff_user.email, REMOTE_ADDR="10.9.8.7").status_code == 302
        assert password_step(client, boss.email).status_code == 302
        assert password_step(client, staff_user.email.upper()).status_code == 429  # case does not dodge it


def test_api_style_clients_get_json_429(client, staff_user):
    with freeze_time(START):
        _fail(client, staff_user.email, 5)
        response = password_step(client, staff_user.email, HTTP_ACCEPT="application/json")
    assert response.status_code == 429
    body = response.json()
    assert body["code"] == "locked_out"
    assert body["retry_after"] == 900
    assert "Try again after" in body["message"]


def test_wrong_otp_codes_count_towards_the_lockout(client, staff_user):
    device = enrol(staff_user)
    device.tolerance = 0
    device.save()
    with freeze_time(START):
        password_step(client, staff_user.email)
        bad = "123456" if totp_code(device) != "123456" else "654321"
        statuses = []
        for _ in range(5):
            device.refresh_from_db()
            device.throttling_failure_count = 0  # isolate axes from django-otp's per-device throttle
            device.save()
            statuses.append(client.post(reverse("accounts:mfa"), {"code": bad}).status_code)
        assert statuses == [200, 200, 200, 200, 429]
        refused = client.post(reverse("accounts:mfa"), {"code": totp_code(device)})
        assert refused.status_code == 429
    assert "_auth_user_id" not in client.session
    failures = AuditEvent.objects.filter(action="auth.login.failure", after__factor="totp")
    assert failures.count() >= 5
    assert AuditEvent.objects.filter(action="auth.lockout").count() == 1


def test_unlock_command_lifts_the_lock_and_is_audited(client, staff_user, capsys):
    with freeze_time(START):
        _fail(client, staff_user.email, 5)
        assert password_step(client, staff_user.email).status_code == 429
        call_command("unlock_user", "--email", staff_user.email.upper())
        assert "Unlocked sam.support@ghostcrm.test" in capsys.readouterr().out
        assert password_step(client, staff_user.email).status_code == 302
    event = AuditEvent.objects.get(action="auth.unlock")
    assert event.target_id == str(staff_user.pk)
    assert event.after["attempt_records_cleared"] == 1
    assert event.actor_type == AuditEvent.ActorType.SYSTEM


def test_admin_lists_attempts_and_unlocks(client, staff_user, admin_session):
    other = type(client)()
    with freeze_time(START):
        _fail(other, staff_user.email, 5)
    changelist = admin_session.get(reverse("admin:axes_accessattempt_changelist"))
    assert changelist.status_code == 200 and staff_user.email in changelist.content.decode()
    attempt = AccessAttempt.objects.get()
    response = admin_session.post(
        reverse("admin:axes_accessattempt_changelist"),
        {"action": "unlock_selected", "_selected_action": [attempt.pk]},
    )
    assert response.status_code == 302
    assert not AccessAttempt.objects.exists()
    assert AuditEvent.objects.filter(action="auth.unlock", target_id=str(staff_user.pk)).exists()


def test_correct_password_is_still_accepted_below_the_limit(client, staff_user):
    with freeze_time(START):
        _fail(client, staff_user.email, 4)
        response = password_step(client, staff_user.email, PASSWORD)
    assert response.status_code == 302


def test_completed_sign_in_resets_the_failure_count(client, staff_user):
    device = enrol(staff_user)
    with freeze_time(START):
        _fail(client, staff_user.email, 3)
        password_step(client, staff_user.email)
        assert client.post(reverse("accounts:mfa"), {"code": totp_code(device)}).status_code == 302
    assert not AccessAttempt.objects.exists()


def test_behind_a_proxy_the_lock_and_the_audit_use_the_address_the_proxy_saw(client, staff_user, settings):
    """TRUSTED_PROXY_COUNT=1: the rightmost X-Forwarded-For entry is the client; the ones the client wrote
    itself (left of it) change nothing, so rotating them does not dodge the lock."""
    settings.TRUSTED_PROXY_COUNT = 1
    proxy = {"REMOTE_ADDR": "10.0.0.2"}
    with freeze_time(START):
        for i in range(5):
            forged = {"HTTP_X_FORWARDED_FOR": f"198.51.100.{i}, 203.0.113.7"}
            password_step(client, staff_user.email, "wrong-password-guess", **proxy, **forged)
        again = password_step(client, staff_user.email, HTTP_X_FORWARDED_FOR="198.51.100.99, 203.0.113.7", **proxy)
        assert again.status_code == 429
        other = password_step(client, staff_user.email, HTTP_X_FORWARDED_FOR="203.0.113.8", **proxy)
        assert other.status_code == 302  # another client behind the same proxy is not locked
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"203.0.113.7"}
    lockout = AuditEvent.objects.get(action="auth.lockout")
    assert lockout.ip_address == "203.0.113.7"
    assert AuditEvent.objects.get(action="auth.login.step").ip_address == "203.0.113.8"


def test_without_a_trusted_proxy_x_forwarded_for_is_ignored(client, staff_user, settings):
    settings.TRUSTED_PROXY_COUNT = 0
    with freeze_time(START):
        for i in range(5):
            password_step(client, staff_user.email, "wrong-password-guess", HTTP_X_FORWARDED_FOR=f"198.51.100.{i}")
        assert password_step(client, staff_user.email, HTTP_X_FORWARDED_FOR="198.51.100.77").status_code == 429
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"127.0.0.1"}
    assert AuditEvent.objects.get(action="auth.lockout").ip_address == "127.0.0.1"
