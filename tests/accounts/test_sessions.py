"""Sessions: tracked per login, idle and absolute timeouts, revocation by an admin, disabled accounts,
and the password asked again before changing an e-mail address, a password or MFA."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client
from django.urls import reverse
from freezegun import freeze_time

from ghostcrm.accounts.models import UserSession
from ghostcrm.audit.models import AuditEvent
from tests.accounts.factories import PASSWORD
from tests.accounts.helpers import enrol, full_sign_in

pytestmark = pytest.mark.django_db
START = dt.datetime(2026, 11, 24, 8, 0, tzinfo=dt.UTC)


def _signed_in(user) -> Client:
    """A browser signed in through both steps. Each call uses a fresh TOTP time step (a code works once)."""
    device = user.totpdevice_set.filter(confirmed=True).first()
    if device is not None and device.last_t >= 0:
        device.last_t -= 1  # as if the previous code had been used a step earlier; see test_totp_code_works_only_once
        device.save(update_fields=["last_t"])
    client = Client(HTTP_USER_AGENT="TestBrowser/1.0")
    device = enrol(user) if not user.totpdevice_set.exists() else user.totpdevice_set.get()
    assert full_sign_in(client, user, device).status_code == 302
    return client


def test_login_records_the_session_with_address_and_user_agent(boss):
    with freeze_time(START):
        client = _signed_in(boss)
    session = UserSession.objects.get(user=boss)
    assert session.ip_address == "127.0.0.1"
    assert session.user_agent == "TestBrowser/1.0"
    assert session.created_at == START and session.ended_at is None
    assert session.session_key_hash != client.session.session_key  # only the hash is stored
    assert len(session.session_key_hash) == 64


def test_idle_timeout_after_thirty_minutes(boss):
    with freeze_time(START) as clock:
        client = _signed_in(boss)
        clock.tick(dt.timedelta(minutes=29))
        assert client.get(reverse("admin:index")).status_code == 200  # activity moves the idle clock
        clock.tick(dt.timedelta(minutes=29))
        assert client.get(reverse("admin:index")).status_code == 200
        clock.tick(dt.timedelta(minutes=31))
        response = client.get(reverse("admin:index"))
    assert response.status_code == 302 and response.url.startswith(reverse("accounts:login"))
    session = UserSession.objects.get(user=boss)
    assert session.end_reason == UserSession.EndReason.IDLE and session.ended_at is not None
    assert "_auth_user_id" not in client.session
    assert AuditEvent.objects.filter(action="auth.session.end", after__reason="idle").exists()


def test_absolute_timeout_after_twelve_hours_despite_activity(boss):
    with freeze_time(START) as clock:
        client = _signed_in(boss)
        for _ in range(35):  # 35 x 20 min = 11 h 40 min of steady activity
            clock.tick(dt.timedelta(minutes=20))
            assert client.get(reverse("admin:index")).status_code == 200
        clock.tick(dt.timedelta(minutes=21))
        response = client.get(reverse("admin:index"))
    assert response.status_code == 302
    assert UserSession.objects.get(user=boss).end_reason == UserSession.EndReason.ABSOLUTE


def test_admin_ends_one_session_of_a_user(boss, staff_user, admin_session):
    first, second = _signed_in(staff_user), _signed_in(staff_user)
    sessions = list(UserSession.objects.filter(user=staff_user).order_by("pk"))
    assert len(sessions) == 2
    page = admin_session.get(reverse("admin:accounts_usersession_changelist"))
    assert page.status_code == 200 and "TestBrowser/1.0" in page.content.decode()
    response = admin_session.post(
        reverse("admin:accounts_usersession_changelist"),
        {"action": "end_sessions", "_selected_action": [sessions[0].pk]},
    )
    assert response.status_code == 302
    assert first.get(reverse("admin:index")).status_code == 302
    assert second.get(reverse("admin:index")).status_code == 200
    event = AuditEvent.objects.get(action="auth.session.revoke")
    assert event.after["session"] == sessions[0].pk and event.actor_label == "root@ghostcrm.test"


def test_admin_ends_all_sessions_of_a_user(staff_user, admin_session):
    clients = [_signed_in(staff_user), _signed_in(staff_user)]
    response = admin_session.post(
        reverse("admin:accounts_user_changelist"), {"action": "end_all_sessions", "_selected_action": [staff_user.pk]}
    )
    assert response.status_code == 302
    assert all(c.get(reverse("admin:index")).status_code == 302 for c in clients)
    assert not UserSession.objects.filter(user=staff_user, ended_at__isnull=True).exists()
    assert admin_session.get(reverse("admin:index")).status_code == 200


def test_user_change_page_shows_active_sessions(staff_user, admin_session):
    _signed_in(staff_user)
    page = admin_session.get(reverse("admin:accounts_user_change", args=[staff_user.pk]))
    assert page.status_code == 200 and "TestBrowser/1.0" in page.content.decode()


def test_disabling_an_account_ends_its_sessions(staff_user):
    client = _signed_in(staff_user)
    staff_user.is_active = False
    staff_user.save()
    session = UserSession.objects.get(user=staff_user)
    assert session.end_reason == UserSession.EndReason.DISABLED
    assert client.get(reverse("admin:index")).status_code == 302
    assert AuditEvent.objects.filter(action="auth.session.revoke", after__reason="disabled").exists()


def test_sensitive_pages_ask_for_the_password_again(boss, staff_user):
    with freeze_time(START) as clock:
        client = _signed_in(boss)
        change_url = reverse("admin:accounts_user_change", args=[staff_user.pk])
        assert client.get(change_url).status_code == 200  # password typed at sign-in, minutes ago
        clock.tick(dt.timedelta(minutes=6))
        response = client.get(change_url)
        assert response.status_code == 302 and response.url.startswith(reverse("accounts:reauth"))
        for name, args in (
            ("admin:auth_user_password_change", [staff_user.pk]),
            ("admin:password_change", []),
        ):
            assert client.get(reverse(name, args=args)).url.startswith(reverse("accounts:reauth"))
        wrong = client.post(response.url, {"password": "not-my-password-x"})
        assert wrong.status_code == 200 and "not correct" in wrong.content.decode()
        right = client.post(response.url, {"password": PASSWORD})
        assert right.status_code == 302 and right.url == change_url
        assert client.get(change_url).status_code == 200
    assert AuditEvent.objects.filter(action="auth.reauth", actor_label=boss.email).count() == 1
    assert AuditEvent.objects.filter(action="auth.login.failure", after__factor="reauth-password").count() == 1


def test_own_password_change_keeps_this_session_and_ends_the_others(boss):
    with freeze_time(START):
        here, elsewhere = _signed_in(boss), _signed_in(boss)
        response = here.post(
            reverse("admin:password_change"),
            {
                "old_password": PASSWORD,
                "new_password1": "a-brand-new-passphrase-7",
                "new_password2": "a-brand-new-passphrase-7",
            },
        )
        assert response.status_code == 302, response.content.decode()[:2000]
        assert here.get(reverse("admin:index")).status_code == 200
        assert elsewhere.get(reverse("admin:index")).status_code == 302
    event = AuditEvent.objects.get(action="auth.password.change")
    assert event.target_id == str(boss.pk) and event.ip_address == "127.0.0.1"
    assert UserSession.objects.filter(user=boss, ended_at__isnull=True).count() == 1
