"""The admin itself requires a verified second factor, on every page (django-rq's included)."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.admin.sites import AdminSite
from django.test import RequestFactory
from django.urls import NoReverseMatch, reverse
from django_otp.admin import OTPAdminSite

from ghostcrm.core.admin_base import AuditedModelAdmin

pytestmark = pytest.mark.django_db


def _admin_urls() -> list[str]:
    urls = [reverse("admin:index"), reverse("admin:password_change"), "/admin/rq/"]
    for model, _model_admin in admin.site._registry.items():
        opts = model._meta
        urls.append(reverse("admin:app_list", args=[opts.app_label]))
        for suffix in ("changelist", "add"):
            try:
                urls.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_{suffix}"))
            except NoReverseMatch:
                continue
    return sorted(set(urls))


def test_admin_site_is_the_otp_site_with_every_registration():
    assert isinstance(admin.site._wrapped if hasattr(admin.site, "_wrapped") else admin.site, OTPAdminSite)
    labels = {m._meta.label for m in admin.site._registry}
    for expected in (
        "accounts.User", "accounts.Invitation", "accounts.UserSession", "auth.Group", "audit.AuditEvent",
        "core.SystemSetting", "axes.AccessAttempt", "axes.AccessLog", "axes.AccessFailureLog",
        "otp_totp.TOTPDevice", "otp_static.StaticDevice",
    ):  # fmt: skip
        assert expected in labels


def test_third_party_auth_admins_are_audited():
    from axes.models import AccessAttempt, AccessFailureLog, AccessLog
    from django_otp.plugins.otp_static.models import StaticDevice
    from django_otp.plugins.otp_totp.models import TOTPDevice

    for model in (AccessAttempt, AccessLog, AccessFailureLog, TOTPDevice, StaticDevice):
        assert isinstance(admin.site._registry[model], AuditedModelAdmin)


def test_unverified_session_is_redirected_from_every_admin_url(client, super_admin):
    client.force_login(super_admin)  # password-authenticated, no verified device
    urls = _admin_urls()
    assert len(urls) > 20
    for url in urls:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response.url.startswith(reverse("accounts:mfa")), (url, response.url)


def test_without_a_device_the_second_factor_page_sends_to_enrolment(client, super_admin):
    client.force_login(super_admin)
    response = client.get(reverse("accounts:mfa"))
    assert response.status_code == 302 and response.url == reverse("accounts:mfa_enrol")
    assert client.get(reverse("accounts:mfa_enrol")).status_code == 200


def test_site_has_permission_itself_requires_verification(super_admin):
    request = RequestFactory().get("/admin/")
    request.user = super_admin
    super_admin.is_verified = lambda: False
    assert not admin.site.has_permission(request)
    assert AdminSite.has_permission(admin.site, request)  # only the second factor is missing
    super_admin.is_verified = lambda: True
    assert admin.site.has_permission(request)


def test_verified_session_reaches_the_admin(admin_session):
    assert admin_session.get(reverse("admin:index")).status_code == 200
    assert admin_session.get(reverse("admin:accounts_invitation_changelist")).status_code == 200


def test_admin_login_url_sends_to_the_two_step_sign_in(client):
    response = client.get(reverse("admin:login") + "?next=/admin/audit/")
    assert response.status_code == 302
    assert response.url == reverse("accounts:login") + "?next=%2Fadmin%2Faudit%2F"


def test_staff_flag_removed_mid_session_does_not_loop(admin_session, super_admin):
    super_admin.is_staff = False
    super_admin.save()
    response = admin_session.get(reverse("admin:index"), follow=True)
    assert response.redirect_chain[-1][0].startswith(reverse("accounts:login"))
    assert response.status_code == 200 and "_auth_user_id" not in admin_session.session
