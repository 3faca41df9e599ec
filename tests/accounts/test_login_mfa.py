"""Two-step sign-in: password then TOTP (or enrolment with QR code), backup codes, replay protection."""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.urls import reverse
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice
from freezegun import freeze_time

from ghostcrm.accounts.errors import MFAFailed
from ghostcrm.accounts.services.mfa import backup_codes_generate, mfa_verify
from ghostcrm.audit.models import AuditEvent
from tests.accounts.factories import PASSWORD
from tests.accounts.helpers import enrol, full_sign_in, password_step, totp_code

pytestmark = pytest.mark.django_db


def _actions(user) -> list[str]:
    return list(
        AuditEvent.objects.filter(target_type="accounts.user", target_id=str(user.pk))
        .order_by("id")
        .values_list("action", flat=True)
    )


def test_password_alone_does_not_log_in(client, staff_user):
    enrol(staff_user)
    response = password_step(client, staff_user.email)
    assert response.status_code == 302 and response.url == reverse("accounts:mfa")
    assert "_auth_user_id" not in client.session
    assert client.get(reverse("admin:index")).status_code == 302


def test_first_login_enrols_totp_with_qr_code_and_shows_ten_backup_codes(client, staff_user):
    response = password_step(client, staff_user.email)
    assert response.url == reverse("accounts:mfa_enrol")
    page = client.get(reverse("accounts:mfa_enrol"))
    assert page.status_code == 200
    html = page.content.decode()
    assert "<svg" in html  # the QR code, inline
    device = TOTPDevice.objects.get(user=staff_user, confirmed=False)
    import base64

    secret = base64.b32encode(device.bin_key).decode()
    assert " ".join(secret[i : i + 4] for i in range(0, len(secret), 4)) in html

    wrong = client.post(
        reverse("accounts:mfa_enrol"), {"code": "000000" if totp_code(device) != "000000" else "111111"}
    )
    assert wrong.status_code == 200 and "not valid" in wrong.content.decode()
    device.refresh_from_db()
    device.throttling_failure_count = 0  # django-otp's own per-device throttle; not what this test is about
    device.save()

    done = client.post(reverse("accounts:mfa_enrol"), {"code": totp_code(device)})
    assert done.status_code == 200
    codes = re.findall(r"<li>([a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4})</li>", done.content.decode())
    assert len(codes) == 10 and len(set(codes)) == 10
    device.refresh_from_db()
    assert device.confirmed
    assert client.get(reverse("admin:index")).status_code == 200
    actions = _actions(staff_user)
    for expected in (
        "auth.login.step",
        "auth.login.failure",
        "auth.mfa.enrol",
        "auth.mfa.backup_codes",
        "auth.login.success",
    ):
        assert expected in actions
    success = AuditEvent.objects.get(action="auth.login.success", target_id=str(staff_user.pk))
    assert success.after == {"factors": ["password", "totp"]}
    assert success.ip_address == "127.0.0.1"


def test_session_key_changes_at_each_step(client, staff_user):
    device = enrol(staff_user)
    client.get(reverse("accounts:login"))
    client.session.save()
    anonymous_key = client.session.session_key
    password_step(client, staff_user.email)
    between_key = client.session.session_key
    client.post(reverse("accounts:mfa"), {"code": totp_code(device)})
    final_key = client.session.session_key
    assert len({anonymous_key, between_key, final_key}) == 3
    assert client.session["_auth_user_id"] == str(staff_user.pk)


def test_totp_code_works_only_once(client, staff_user):
    device = enrol(staff_user)
    with freeze_time("2026-11-24 12:00:05"):
        code = totp_code(device)
        assert full_sign_in(client, staff_user, device).status_code == 302
        client.post(reverse("admin:logout"))
        password_step(client, staff_user.email)
        replay = client.post(reverse("accounts:mfa"), {"code": code})
    assert replay.status_code == 200
    assert "already used" in replay.content.decode()
    assert "_auth_user_id" not in client.session
    failure = AuditEvent.objects.filter(action="auth.login.failure", target_id=str(staff_user.pk)).get()
    assert failure.after == {"factor": "totp"}


def test_backup_codes_are_stored_hashed_and_work_once(client, staff_user):
    enrol(staff_user)
    codes = backup_codes_generate(user=staff_user)
    stored = set(StaticToken.objects.filter(device__user=staff_user).values_list("token", flat=True))
    assert len(stored) == 10
    for code in codes:
        assert code not in stored and code.replace("-", "") not in stored
        assert all(code.replace("-", "")[:8] not in token for token in stored)

    password_step(client, staff_user.email)
    response = client.post(reverse("accounts:mfa"), {"code": codes[0].upper()})
    assert response.status_code == 302
    assert StaticToken.objects.filter(device__user=staff_user).count() == 9
    success = AuditEvent.objects.get(action="auth.login.success", target_id=str(staff_user.pk))
    assert success.after == {"factors": ["password", "backup"]}

    client.post(reverse("admin:logout"))
    StaticDevice.objects.filter(user=staff_user).update(throttling_failure_count=0)
    password_step(client, staff_user.email)
    again = client.post(reverse("accounts:mfa"), {"code": codes[0]})
    assert again.status_code == 200 and "already used" in again.content.decode()
    failure = AuditEvent.objects.get(action="auth.login.failure", target_id=str(staff_user.pk))
    assert failure.after == {"factor": "backup"}


def test_new_backup_codes_replace_the_old_ones(staff_user):
    first = backup_codes_generate(user=staff_user)
    backup_codes_generate(user=staff_user)
    with pytest.raises(MFAFailed):
        mfa_verify(user=staff_user, code=first[0])


def test_wrong_password_is_audited_with_factor(client, staff_user):
    response = password_step(client, staff_user.email, "not-the-password-at-all")
    assert response.status_code == 200 and "not correct" in response.content.decode()
    event = AuditEvent.objects.get(action="auth.login.failure")
    assert event.after == {"factor": "password"}
    assert event.outcome == AuditEvent.Outcome.FAILURE
    assert event.actor_label == staff_user.email
    assert event.ip_address == "127.0.0.1"
    assert "not-the-password-at-all" not in str(event.before) + str(event.after) + event.message


def test_argon2_hashes_passwords(staff_user):
    assert staff_user.password.startswith("argon2$")
    assert settings.PASSWORD_HASHERS[0].endswith("Argon2PasswordHasher")


def test_open_redirect_refused(client, staff_user):
    device = enrol(staff_user)
    client.post(
        reverse("accounts:login") + "?next=https://evil.example/x", {"username": staff_user.email, "password": PASSWORD}
    )
    response = client.post(reverse("accounts:mfa"), {"code": totp_code(device)})
    assert response.url == reverse("admin:index")


def test_password_step_expires_after_ten_minutes(client, staff_user):
    device = enrol(staff_user)
    with freeze_time("2026-11-24 12:00:00") as clock:
        password_step(client, staff_user.email)
        clock.tick(600 + 1)
        response = client.post(reverse("accounts:mfa"), {"code": totp_code(device)})
    assert response.status_code == 302 and response.url == reverse("accounts:login")
    assert "_auth_user_id" not in client.session


def test_own_security_pages_need_the_second_factor(client, staff_user):
    client.force_login(staff_user)  # password-authenticated only
    for name in ("accounts:security", "accounts:backup_codes", "accounts:mfa_reset", "accounts:reauth"):
        response = client.post(reverse(name)) if name != "accounts:security" else client.get(reverse(name))
        assert response.status_code == 302 and response.url.startswith(reverse("accounts:mfa")), name
    assert not StaticDevice.objects.filter(user=staff_user).exists()


def test_right_password_of_an_account_without_admin_access_is_a_refused_sign_in(client, staff_user):
    staff_user.is_staff = False
    staff_user.save()
    response = password_step(client, staff_user.email)
    assert response.status_code == 200 and "not correct" in response.content.decode()
    assert "_gc_preauth" not in client.session
    event = AuditEvent.objects.get(action="auth.login.failure")
    assert event.target_id == str(staff_user.pk) and event.after == {"factor": "password"}


def test_a_seven_digit_code_is_audited_as_a_backup_code_guess(client, staff_user):
    enrol(staff_user)
    password_step(client, staff_user.email)
    assert client.post(reverse("accounts:mfa"), {"code": "1234567"}).status_code == 200
    assert AuditEvent.objects.get(action="auth.login.failure").after == {"factor": "backup"}


def test_password_reset_is_not_offered(client):
    """No self-service reset: a super admin sets a new password (audited, ends sessions) and resets MFA."""
    from django.urls import NoReverseMatch

    for name in ("admin_password_reset", "password_reset", "accounts:password_reset"):
        with pytest.raises(NoReverseMatch):
            reverse(name)
    assert client.get("/accounts/password_reset/").status_code == 404
    assert "reset" not in client.get(reverse("accounts:login")).content.decode().lower()
