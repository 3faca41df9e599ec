"""The accounts points of the restructuring and of what a super admin tripped over: the invitation e-mail
after commit, MFA devices deleted in the admin, the invitation form's role and confirmation, TOTP throttling
said as such, role labels and all field errors at once."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.core import mail
from django.core.management import CommandError, call_command
from django.db import transaction
from django.urls import reverse
from freezegun import freeze_time

from ghostcrm.accounts.errors import MFAThrottled
from ghostcrm.accounts.models import Invitation, UserSession
from ghostcrm.accounts.services.invitations import invitation_create
from ghostcrm.accounts.services.mfa import mfa_verify
from ghostcrm.audit.models import AuditEvent
from ghostcrm.audit.services import Actor
from ghostcrm.core.errors import ValidationError
from tests.accounts.factories import OrganizationFactory
from tests.accounts.helpers import enrol, invite, on_commit_run, password_step, totp_code

pytestmark = pytest.mark.django_db
START = dt.datetime(2026, 11, 24, 10, 0, 0, tzinfo=dt.UTC)


class Rollback(Exception):
    pass


# --- The invitation e-mail leaves after commit ------------------------------------------------------------


def _invite_then_roll_back() -> None:
    with transaction.atomic():
        invitation_create(email="ghost@example.com", role="support", inviter=None, actor=Actor.system("test"))
        raise Rollback


def test_a_rolled_back_invitation_sends_nothing():
    with on_commit_run(execute=True) as callbacks, pytest.raises(Rollback):
        _invite_then_roll_back()
    assert callbacks == []
    assert mail.outbox == []
    assert not Invitation.objects.filter(email="ghost@example.com").exists()


def test_the_e_mail_leaves_when_the_transaction_commits():
    with on_commit_run(execute=False) as callbacks:
        invitation_create(email="later@example.com", role="support", inviter=None, actor=Actor.system("test"))
        assert mail.outbox == []
    assert len(callbacks) == 1
    callbacks[0]()
    assert [m.to for m in mail.outbox] == [["later@example.com"]]


def test_a_mail_server_that_refuses_is_recorded_and_the_invitation_stays(settings):
    settings.EMAIL_BACKEND = "tests.accounts.helpers.RefusingEmailBackend"
    with on_commit_run(execute=True):
        invitation = invitation_create(
            email="bounce@example.com", role="support", inviter=None, actor=Actor.system("test")
        )
    assert Invitation.objects.filter(pk=invitation.pk, state="pending").exists()
    event = AuditEvent.objects.get(action="invitation.send")
    assert event.outcome == AuditEvent.Outcome.FAILURE
    assert event.target_id == str(invitation.pk)
    assert "could not be sent" in event.message


# --- Deleting an MFA device in the admin is an MFA reset --------------------------------------------------


def test_deleting_a_device_in_the_admin_ends_the_owners_sessions(admin_session, staff_user):
    device = enrol(staff_user)
    session = UserSession.objects.create(user=staff_user, session_key_hash="1" * 64)
    response = admin_session.post(reverse("admin:otp_totp_totpdevice_delete", args=[device.pk]), {"post": "yes"})
    assert response.status_code == 302
    session.refresh_from_db()
    assert session.end_reason == UserSession.EndReason.REVOKED


def test_bulk_deleting_devices_in_the_admin_ends_the_owners_sessions(admin_session, staff_user):
    device = enrol(staff_user)
    session = UserSession.objects.create(user=staff_user, session_key_hash="2" * 64)
    admin_session.post(
        reverse("admin:otp_totp_totpdevice_changelist"),
        {"action": "delete_selected", "_selected_action": [device.pk], "post": "yes"},
    )
    session.refresh_from_db()
    assert session.ended_at is not None
    assert AuditEvent.objects.filter(action="auth.mfa.reset", target_id=str(staff_user.pk)).count() == 1


# --- The invitation form -----------------------------------------------------------------------------------


def test_the_invitation_form_preselects_the_least_privileged_role(admin_session):
    page = admin_session.get(reverse("admin:accounts_invitation_add")).content.decode()
    selected = re.findall(r'<option value="([a-z_]+)"[^>]*selected', page)
    assert selected == ["tenant_admin"]
    options = re.findall(r'<option value="(super_admin|support|billing|tenant_admin)"', page)
    assert options == ["tenant_admin", "support", "billing", "super_admin"]


def test_granting_super_admin_needs_the_confirmation(admin_session):
    url = reverse("admin:accounts_invitation_add")
    refused = admin_session.post(url, {"email": "chief@example.com", "role": "super_admin"})
    assert refused.status_code == 200
    assert "tick this box to confirm" in refused.content.decode()
    assert not Invitation.objects.exists()
    with on_commit_run(execute=True):
        granted = admin_session.post(
            url, {"email": "chief@example.com", "role": "super_admin", "confirm_super_admin": "on"}
        )
    assert granted.status_code == 302
    assert Invitation.objects.get().role == "super_admin"
    assert mail.outbox[-1].to == ["chief@example.com"]


def test_the_form_says_organisation(admin_session):
    page = admin_session.get(reverse("admin:accounts_invitation_add")).content.decode()
    assert "Organisation" in page
    assert "Organization" not in page


# --- TOTP throttling -----------------------------------------------------------------------------------------


def test_a_correct_code_during_the_throttle_is_refused_as_throttled(client, staff_user, settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 30  # after one wrong code, codes are not checked for 30 s
    device = enrol(staff_user)
    with freeze_time(START):
        password_step(client, staff_user.email)
        wrong = "000000" if totp_code(device) != "000000" else "111111"
        first = client.post(reverse("accounts:mfa"), {"code": wrong})
        assert "not valid" in first.content.decode()
        second = client.post(reverse("accounts:mfa"), {"code": totp_code(device)})
    text = second.content.decode()
    assert second.status_code == 200
    assert "not checked until 10:00:30 UTC" in text
    assert "in 30 seconds" in text
    assert "not valid" not in text
    assert "_auth_user_id" not in client.session


def test_the_service_says_when_to_retry(staff_user, settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 10
    device = enrol(staff_user)
    device.throttle_increment()
    with pytest.raises(MFAThrottled) as caught:
        mfa_verify(user=staff_user, code=totp_code(device))
    assert caught.value.http_status == 429
    assert 1 <= caught.value.extra["retry_after"] <= 10


# --- Role labels and every field error at once ---------------------------------------------------------


def test_user_facing_errors_name_roles_by_label():
    with pytest.raises(ValidationError) as caught:
        invite(role="tenant_admin")
    assert "Tenant CRM admin" in caught.value.message
    assert "tenant_admin" not in caught.value.message


def test_all_invitation_field_errors_come_at_once_in_field_order():
    with pytest.raises(ValidationError) as caught:
        invite(email="not-an-address", role="tenant_admin")
    fields = caught.value.extra["fields"]
    assert list(fields) == ["email", "organization"]
    assert "not a valid e-mail address" in fields["email"][0]
    assert "needs the organisation" in fields["organization"][0]


def test_the_admin_form_shows_the_services_field_errors_on_their_fields(admin_session):
    organization = OrganizationFactory()
    response = admin_session.post(
        reverse("admin:accounts_invitation_add"),
        {"email": "x@example.com", "role": "support", "organization": organization.pk},
    )
    page = response.content.decode()
    assert response.status_code == 200
    field = re.search(r'<div class="[^"]*field-organization[^"]*">.*?</div>\s*</div>', page, re.S)
    assert field is not None
    assert "Only Tenant CRM admin invitations name an organisation" in field.group(0)


def test_accepting_reports_a_wrong_address_and_a_weak_password_together(client, super_admin):
    invitation, token = invite(inviter=super_admin)
    response = client.post(
        reverse("accounts:invitation", args=[token]),
        {"email": "someone.else@example.com", "password1": "short", "password2": "short"},
    )
    text = response.content.decode()
    assert response.status_code == 400
    assert "Does not match the invitation." in text
    assert "too short" in text
    assert text.index("different e-mail address") < text.index("too short")  # the sentence, in field order
    invitation.refresh_from_db()
    assert invitation.email_mismatches == 1


def test_the_command_line_names_roles_by_label_too():
    organization = OrganizationFactory()
    args = ["--email", "x@example.com", "--role", "support", "--organization", str(organization.pk)]
    with pytest.raises(CommandError, match="Only Tenant CRM admin invitations"):
        call_command("invite_user", *args)
