"""No default accounts outside the demo; MFA reset by an admin and by the user, behind the password."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth import authenticate
from django.test import Client, RequestFactory
from django.urls import reverse
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice
from freezegun import freeze_time

from ghostcrm.accounts.models import User, UserSession
from ghostcrm.accounts.services.demo import DEMO_ADMIN_EMAIL, demo_admin_create
from ghostcrm.accounts.services.mfa import backup_codes_generate
from ghostcrm.audit.models import AuditEvent
from ghostcrm.core.errors import PermissionDenied
from tests.accounts.factories import PASSWORD
from tests.accounts.helpers import enrol, full_sign_in

pytestmark = pytest.mark.django_db


def test_no_account_exists_after_migrate():
    assert not User.objects.exists()


def test_demo_admin_has_a_random_password_and_enrols_at_first_sign_in():
    user, password = demo_admin_create()
    assert user.email == DEMO_ADMIN_EMAIL and user.role == "super_admin" and user.is_superuser
    assert len(password) >= 20
    assert authenticate(RequestFactory().post("/"), username=user.email, password=password) == user
    assert not TOTPDevice.objects.filter(user=user).exists()
    enrol(user)
    again, second = demo_admin_create()
    assert again.pk == user.pk and second != password
    assert not TOTPDevice.objects.filter(user=user).exists()  # re-running the demo starts enrolment afresh
    assert AuditEvent.objects.filter(action="auth.demo_admin").count() == 2


def test_demo_admin_refused_in_production(settings):
    settings.GHOSTCRM_ENV = "production"
    with pytest.raises(PermissionDenied, match="never created when GHOSTCRM_ENV=production"):
        demo_admin_create()
    assert not User.objects.exists()


def test_admin_resets_a_users_mfa(admin_session, staff_user):
    device = enrol(staff_user)
    backup_codes_generate(user=staff_user)
    client = Client()
    assert full_sign_in(client, staff_user, device).status_code == 302
    response = admin_session.post(
        reverse("admin:accounts_user_changelist"), {"action": "reset_mfa", "_selected_action": [staff_user.pk]}
    )
    assert response.status_code == 302
    assert not TOTPDevice.objects.filter(user=staff_user).exists()
    assert not StaticDevice.objects.filter(user=staff_user).exists()
    assert not UserSession.objects.filter(user=staff_user, ended_at__isnull=True).exists()
    assert client.get(reverse("admin:index")).status_code == 302
    event = AuditEvent.objects.get(action="auth.mfa.reset")
    assert event.target_id == str(staff_user.pk) and event.actor_label == "root@ghostcrm.test"


def test_admin_mfa_reset_needs_a_recent_password(admin_session, staff_user):
    enrol(staff_user)
    with freeze_time(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=6)):
        admin_session.post(
            reverse("admin:accounts_user_changelist"), {"action": "reset_mfa", "_selected_action": [staff_user.pk]}
        )
    assert TOTPDevice.objects.filter(user=staff_user).exists()
    assert not AuditEvent.objects.filter(action="auth.mfa.reset").exists()


def test_user_regenerates_backup_codes_and_resets_own_mfa_after_confirming_password(staff_user):
    device = enrol(staff_user)
    client = Client()
    start = dt.datetime(2026, 11, 24, 15, 0, tzinfo=dt.UTC)
    with freeze_time(start) as clock:
        full_sign_in(client, staff_user, device)
        assert client.get(reverse("accounts:security")).status_code == 200
        fresh = client.post(reverse("accounts:backup_codes"))
        assert fresh.status_code == 200 and fresh.content.decode().count("<li>") >= 10
        clock.tick(dt.timedelta(minutes=6))
        stale = client.post(reverse("accounts:mfa_reset"))
        assert stale.status_code == 302 and stale.url.startswith(reverse("accounts:reauth"))
        assert TOTPDevice.objects.filter(user=staff_user).exists()
        client.post(stale.url, {"password": PASSWORD})
        done = client.post(reverse("accounts:mfa_reset"))
        assert done.status_code == 302
    assert not TOTPDevice.objects.filter(user=staff_user).exists()
    assert client.get(reverse("admin:index")).status_code == 302
    assert AuditEvent.objects.filter(action="auth.mfa.reset", target_id=str(staff_user.pk)).exists()


def test_device_admin_cannot_reveal_or_add_secrets(admin_session, staff_user):
    device = enrol(staff_user)
    page = admin_session.get(reverse("admin:otp_totp_totpdevice_change", args=[device.pk]))
    assert page.status_code == 200 and device.key not in page.content.decode()
    assert admin_session.get(reverse("admin:otp_totp_totpdevice_add")).status_code == 403
    response = admin_session.post(reverse("admin:otp_totp_totpdevice_delete", args=[device.pk]), {"post": "yes"})
    assert response.status_code == 302 and not TOTPDevice.objects.filter(pk=device.pk).exists()
    delete_event = AuditEvent.objects.get(action="admin.delete", target_type="otp_totp.totpdevice")
    assert device.key not in str(delete_event.before)
    assert AuditEvent.objects.filter(action="auth.mfa.reset", target_id=str(staff_user.pk)).exists()
