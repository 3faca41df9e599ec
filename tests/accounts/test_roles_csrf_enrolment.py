"""Roles enforced in the admin (README "Roles"), CSRF on every form that changes something, enrolment that
cannot replace an authenticator, backup-code guesses counted by the lockout, e-mail case in the user admin."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.test import Client
from django.urls import reverse
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice
from freezegun import freeze_time

from ghostcrm.accounts.models import Role, User, UserSession
from ghostcrm.accounts.services.invitations import invitation_create
from ghostcrm.accounts.services.mfa import backup_codes_generate, mfa_enrol_confirm
from ghostcrm.audit.models import AuditEvent
from ghostcrm.audit.services import Actor
from ghostcrm.core.errors import Conflict
from tests.accounts.factories import PASSWORD, OrganizationFactory
from tests.accounts.helpers import enrol, invite, on_commit_run, password_step, totp_code, verified_login

pytestmark = pytest.mark.django_db
START = dt.datetime(2026, 11, 24, 11, 0, tzinfo=dt.UTC)


@pytest.fixture
def billing_user(django_user_model):
    return django_user_model.objects.create_user(
        email="bill.billing@ghostcrm.test", password=PASSWORD, role=Role.BILLING, first_name="Bill", last_name="Ing"
    )


def _signed_in(user: User, **client_kwargs) -> Client:
    return verified_login(Client(**client_kwargs), user)


# --- Roles -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url_name", "support", "billing"),
    [
        ("admin:accounts_user_changelist", 200, 200),  # every staff role views everything
        ("admin:audit_auditevent_changelist", 200, 200),
        ("admin:accounts_user_add", 403, 403),  # only super admins manage accounts
        ("admin:core_systemsetting_add", 403, 403),  # ... and system settings
        ("admin:accounts_usersession_changelist", 403, 403),  # sessions: super admins only
        ("admin:organizations_organization_add", 200, 403),  # support steers organisations
        ("admin:billing_plan_add", 403, 200),  # billing changes billing
        ("admin:billing_taxrate_add", 403, 200),
    ],
)
def test_role_table_is_enforced_on_admin_pages(staff_user, billing_user, url_name, support, billing):
    for user, expected in ((staff_user, support), (billing_user, billing)):
        response = _signed_in(user).get(reverse(url_name))
        assert response.status_code == expected, (user.role, url_name, response.status_code)


def test_support_and_billing_cannot_change_accounts_or_settings(staff_user, billing_user, boss):
    from ghostcrm.core.models import SystemSetting

    setting = SystemSetting.objects.create(key="accounts.invitation_expiry_hours", value="72")
    for user in (staff_user, billing_user):
        client = _signed_in(user)
        change = reverse("admin:accounts_user_change", args=[boss.pk])
        page = client.get(change)
        assert page.status_code == 200 and 'name="_save"' not in page.content.decode()  # read-only view
        posted = client.post(change, {"email": "taken.over@example.com", "role": "support", "is_active": "on"})
        assert posted.status_code == 403
        assert client.post(reverse("admin:core_systemsetting_change", args=[setting.pk]), {}).status_code == 403
    boss.refresh_from_db()
    assert boss.email == "bea.boss@ghostcrm.test" and boss.role == Role.SUPER_ADMIN


def test_super_admin_actions_are_neither_offered_nor_run_for_other_roles(staff_user, billing_user, boss):
    enrol(boss)
    victim_client = _signed_in(boss)
    changelist = reverse("admin:accounts_user_changelist")
    for user in (staff_user, billing_user):
        client = _signed_in(user)
        page = client.get(changelist).content.decode()
        for action in ("end_all_sessions", "reset_mfa", "unlock"):
            assert f'value="{action}"' not in page
            client.post(changelist, {"action": action, "_selected_action": [boss.pk]})
    assert victim_client.get(reverse("admin:index")).status_code == 200
    assert TOTPDevice.objects.filter(user=boss).exists()
    assert UserSession.objects.filter(user=boss, ended_at__isnull=True).exists()
    assert not AuditEvent.objects.filter(action__in=["auth.session.revoke", "auth.mfa.reset", "auth.unlock"]).exists()


def test_organisation_lifecycle_actions_are_offered_to_support_not_billing(staff_user, billing_user):
    from ghostcrm.organizations.models import Organization

    Organization.objects.create(name="Acme Ltd", slug="acme-ltd", admin_email="ceo@acme.test")
    lifecycle = ("retry_selected", "suspend_selected", "resume_selected", "deprovision_selected")
    changelist = reverse("admin:organizations_organization_changelist")
    for user, offered in ((staff_user, True), (billing_user, False)):
        page = _signed_in(user).get(changelist)
        assert page.status_code == 200
        text = page.content.decode()
        assert all((f'value="{action}"' in text) is offered for action in lifecycle), user.role


# --- CSRF --------------------------------------------------------------------------------------------------


def test_every_sign_in_and_invitation_form_refuses_a_post_without_csrf_token(staff_user, super_admin):
    invitation, token = invite(email="csrf.check@example.com", role="support", inviter=super_admin)
    anonymous = Client(enforce_csrf_checks=True)
    for url in (
        reverse("accounts:login"),
        reverse("accounts:mfa"),
        reverse("accounts:mfa_enrol"),
        reverse("accounts:invitation", args=[token]),
    ):
        assert anonymous.post(url, {"username": staff_user.email, "password": PASSWORD}).status_code == 403, url
    verified = _signed_in(staff_user, enforce_csrf_checks=True)
    for url in (
        reverse("accounts:reauth"),
        reverse("accounts:backup_codes"),
        reverse("accounts:mfa_reset"),
        reverse("admin:logout"),
        reverse("admin:accounts_invitation_changelist"),
    ):
        assert verified.post(url, {"password": PASSWORD}).status_code == 403, url
    invitation.refresh_from_db()
    assert invitation.state == "pending"
    assert TOTPDevice.objects.filter(user=staff_user).exists()
    # ... and every page with a form carries the token
    for page in (anonymous.get(reverse("accounts:login")), anonymous.get(reverse("accounts:invitation", args=[token]))):
        assert "csrfmiddlewaretoken" in page.content.decode()


# --- Enrolment, backup codes -------------------------------------------------------------------------------


def test_enrolment_cannot_replace_an_existing_authenticator(client, staff_user):
    device = enrol(staff_user)
    password_step(client, staff_user.email)  # the password alone
    page = client.get(reverse("accounts:mfa_enrol"))
    assert page.status_code == 302 and page.url == reverse("accounts:mfa")
    posted = client.post(reverse("accounts:mfa_enrol"), {"code": totp_code(device)})
    assert posted.status_code == 302 and posted.url == reverse("accounts:mfa")
    assert list(TOTPDevice.objects.filter(user=staff_user)) == [device]
    assert "_auth_user_id" not in client.session
    # the service refuses too, whatever calls it
    TOTPDevice.objects.create(user=staff_user, name="attacker phone", confirmed=False)
    with pytest.raises(Conflict, match="already has an authenticator"):
        mfa_enrol_confirm(request=None, user=staff_user, code=totp_code(device))  # type: ignore[arg-type]
    assert TOTPDevice.objects.get(user=staff_user, confirmed=True) == device


def test_backup_code_guesses_count_towards_the_lockout(client, staff_user):
    enrol(staff_user)
    codes = backup_codes_generate(user=staff_user)
    with freeze_time(START):
        password_step(client, staff_user.email)
        statuses = []
        for i in range(5):
            StaticDevice.objects.filter(user=staff_user).update(throttling_failure_count=0)  # isolate axes
            statuses.append(client.post(reverse("accounts:mfa"), {"code": f"aaaa-bbbb-cccc-dd{i:02d}"}).status_code)
        assert statuses == [200, 200, 200, 200, 429]
        assert client.post(reverse("accounts:mfa"), {"code": codes[0]}).status_code == 429  # a real one too
    assert "_auth_user_id" not in client.session
    assert StaticDevice.objects.get(user=staff_user).token_set.count() == 10  # the real code was not spent
    assert AuditEvent.objects.filter(action="auth.login.failure", after__factor="backup").count() >= 5
    assert AuditEvent.objects.filter(action="auth.lockout").count() == 1


# --- E-mail case ---------------------------------------------------------------------------------------------


def test_user_admin_treats_addresses_case_insensitively(admin_session, staff_user, boss):
    add = admin_session.post(
        reverse("admin:accounts_user_add"),
        {
            "email": "Sam.Support@GhostCRM.test",
            "role": "support",
            "password1": "another-long-passphrase",
            "password2": "another-long-passphrase",
        },
    )
    assert add.status_code == 200 and "User with this E-mail address already exists" in add.content.decode()
    change = admin_session.post(
        reverse("admin:accounts_user_change", args=[boss.pk]),
        {
            "email": "SAM.SUPPORT@ghostcrm.test",
            "role": "super_admin",
            "is_active": "on",
            "is_staff": "on",
            "sessions-TOTAL_FORMS": "0",
            "sessions-INITIAL_FORMS": "0",
        },
    )
    assert change.status_code == 200 and "User with this E-mail address already exists" in change.content.decode()
    boss.refresh_from_db()
    assert boss.email == "bea.boss@ghostcrm.test"
    created = admin_session.post(
        reverse("admin:accounts_user_add"),
        {
            "email": "New.Colleague@Example.COM",
            "role": "billing",
            "password1": "another-long-passphrase",
            "password2": "another-long-passphrase",
        },
    )
    assert created.status_code == 302, re.findall(r'class="errorlist[^>]*>(.*?)</ul>', created.content.decode())
    assert User.objects.filter(email="new.colleague@example.com").exists()


def test_bulk_device_delete_needs_a_recent_password(admin_session, staff_user):
    device = enrol(staff_user)
    changelist = reverse("admin:otp_totp_totpdevice_changelist")
    form = {"action": "delete_selected", "_selected_action": [device.pk], "post": "yes"}
    with freeze_time(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=6)):
        stale = admin_session.post(changelist, form, follow=True)
    assert "Confirm your password first" in stale.content.decode()
    assert TOTPDevice.objects.filter(pk=device.pk).exists()
    assert not AuditEvent.objects.filter(action="auth.mfa.reset").exists()
    assert admin_session.post(changelist, form).status_code == 302  # password typed minutes ago
    assert not TOTPDevice.objects.filter(pk=device.pk).exists()
    assert AuditEvent.objects.filter(action="auth.mfa.reset", target_id=str(staff_user.pk)).exists()


@pytest.mark.parametrize(
    "url_name",
    [
        "admin:accounts_user_changelist",
        "admin:accounts_invitation_changelist",
        "admin:accounts_usersession_changelist",
        "admin:otp_totp_totpdevice_changelist",
    ],
)
def test_account_lists_do_not_query_per_row(admin_session, super_admin, url_name):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def add_rows(start: int, count: int) -> None:
        for i in range(start, start + count):
            user = User.objects.create_user(email=f"person{i}@example.com", password=PASSWORD, role=Role.SUPPORT)
            enrol(user)
            UserSession.objects.create(user=user, session_key_hash=f"{i:064d}")
            with on_commit_run(execute=True):
                invitation_create(
                    email=f"invitee{i}@example.com", role="billing", inviter=super_admin, actor=Actor.system("test")
                )
                # A tenant admin's invitation names its organisation (a bare UUID column, no foreign key).
                invitation_create(
                    email=f"crm-admin{i}@example.com",
                    role="tenant_admin",
                    inviter=super_admin,
                    organization_id=OrganizationFactory(name=f"Org {i}").pk,
                    actor=Actor.system("test"),
                )

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin_session.get(reverse(url_name)).status_code == 200
        return len(captured)

    add_rows(0, 2)
    few = queries()
    add_rows(2, 6)
    assert queries() == few
    if url_name == "admin:accounts_invitation_changelist":
        page = admin_session.get(reverse(url_name)).content.decode()
        assert all(f">Org {i}</a>" in page for i in range(8))  # names, read in the list's own query


def test_job_queues_are_viewed_by_every_role_but_changed_by_super_admins_only(
    redis_conn, staff_user, billing_user, boss
):
    import django_rq
    from django_rq.queues import get_queues_list

    queue = django_rq.get_queue("default", commit_mode="auto")
    queue.enqueue("ghostcrm.accounts.jobs.invitations_expire_job")
    assert queue.count == 1
    index = [config["name"] for config in get_queues_list()].index("default")
    clear = reverse("django_rq:clear", args=[index])
    for user in (staff_user, billing_user):
        client = _signed_in(user)
        assert client.get(reverse("django_rq:home")).status_code == 200
        refused = client.post(clear, {"post": "yes"})
        assert refused.status_code == 403 and "Only super admins" in refused.content.decode()
    assert queue.count == 1
    assert _signed_in(boss).post(clear, {"post": "yes"}).status_code == 302
    assert queue.count == 0
