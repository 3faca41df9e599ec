"""Invitations: hashed single-use tokens, GET never accepts, 410 for used/expired/revoked, e-mail match,
rate limits, contexts, resend, expiry job, tenant_admin signal, admin and command."""

from __future__ import annotations

import datetime as dt
import hashlib
import re

import pytest
from django.contrib.auth.hashers import check_password
from django.core import mail
from django.core.management import CommandError, call_command
from django.urls import reverse
from freezegun import freeze_time

from ghostcrm.accounts import jobs
from ghostcrm.accounts.errors import RateLimited
from ghostcrm.accounts.models import Invitation, User
from ghostcrm.accounts.services.invitations import (
    INVITATION_MAX_EMAIL_MISMATCHES,
    invitation_accept,
    invitation_resend,
    invitation_revoke,
)
from ghostcrm.accounts.signals import invitation_accepted
from ghostcrm.audit.models import AuditEvent
from ghostcrm.audit.services import Actor
from ghostcrm.core.errors import Conflict, NotFound, ValidationError
from ghostcrm.core.models import SystemSetting
from tests.accounts.factories import OrganizationFactory
from tests.accounts.helpers import invite, last_link_token, on_commit_run, verified_login

pytestmark = pytest.mark.django_db
NEW_PASSWORD = "quiet-meadow-copper-kite"
START = dt.datetime(2026, 11, 24, 10, 0, tzinfo=dt.UTC)


def _accept(client, token, email="new.person@example.com", password=NEW_PASSWORD):
    return client.post(
        reverse("accounts:invitation", args=[token]),
        {"email": email, "password1": password, "password2": password, "first_name": "Nia", "last_name": "New"},
    )


@pytest.fixture
def organization():
    return OrganizationFactory(name="Acme Ltd", slug="acme-ltd", admin_email="ceo@acme.test")


def test_token_is_random_url_safe_and_stored_only_as_sha256(super_admin):
    invitation, token = invite(inviter=super_admin)
    assert len(token) >= 43  # 32 bytes, base64url
    invitation.refresh_from_db()
    assert invitation.token_hash == hashlib.sha256(token.encode()).hexdigest()
    for field in Invitation._meta.concrete_fields:
        assert token not in str(field.value_from_object(invitation))
    for event in AuditEvent.objects.all():
        assert token not in f"{event.before}{event.after}{event.message}"
    assert invitation.expires_at - invitation.created_at == pytest.approx(
        dt.timedelta(hours=72), abs=dt.timedelta(seconds=5)
    )


def test_email_has_text_and_html_bodies_with_the_site_link(settings, super_admin):
    _invitation, token = invite(inviter=super_admin)
    message = mail.outbox[-1]
    link = f"{settings.SITE_URL}/accounts/invitations/{token}/"
    assert link in message.body
    html, mimetype = message.alternatives[0]
    assert mimetype == "text/html" and link in html
    assert "Ada Admin" in message.body and "Support" in message.subject


def test_get_shows_the_invitation_and_accepts_nothing(client, super_admin):
    invitation, token = invite(inviter=super_admin)
    for _ in range(2):  # a mail scanner following the link, twice
        page = client.get(reverse("accounts:invitation", args=[token]))
        assert page.status_code == 200
    text = page.content.decode()
    assert "Ada Admin" in text and "root@ghostcrm.test" in text and "as Support" in text
    invitation.refresh_from_db()
    assert invitation.state == Invitation.State.PENDING
    assert not User.objects.filter(email="new.person@example.com").exists()


def test_accepting_creates_the_account_and_leads_to_mfa_enrolment(client, super_admin):
    invitation, token = invite(inviter=super_admin)
    response = _accept(client, token, email="New.Person@Example.com")
    assert response.status_code == 302 and response.url == reverse("accounts:mfa_enrol")
    user = User.objects.get(email="new.person@example.com")
    assert user.role == "support" and user.check_password(NEW_PASSWORD) and user.first_name == "Nia"
    invitation.refresh_from_db()
    assert invitation.state == Invitation.State.ACCEPTED and invitation.accepted_user == user
    assert "_auth_user_id" not in client.session  # signed in only after enrolling a second factor
    assert client.get(reverse("accounts:mfa_enrol")).status_code == 200
    assert AuditEvent.objects.filter(
        action="invitation.accept", target_id=str(invitation.pk), outcome="success"
    ).exists()


def test_used_link_is_gone(client, super_admin):
    _invitation, token = invite(inviter=super_admin)
    _accept(client, token)
    for response in (client.get(reverse("accounts:invitation", args=[token])), _accept(type(client)(), token)):
        assert response.status_code == 410
        assert "already been accepted" in response.content.decode()


def test_expired_link_is_gone_and_the_job_marks_it(client, super_admin):
    with freeze_time(START) as clock:
        invitation, token = invite(inviter=super_admin)
        clock.tick(dt.timedelta(hours=72, seconds=1))
        response = client.get(reverse("accounts:invitation", args=[token]))
        assert response.status_code == 410 and "expired on 2026-11-27 10:00 UTC" in response.content.decode()
        invitation.refresh_from_db()
        assert invitation.state == Invitation.State.PENDING  # a GET changes nothing
        assert _accept(client, token).status_code == 410
        assert jobs.invitations_expire_job() == 1
        assert jobs.invitations_expire_job() == 0
    invitation.refresh_from_db()
    assert invitation.state == Invitation.State.EXPIRED
    assert AuditEvent.objects.filter(action="invitation.expire", target_id=str(invitation.pk)).exists()


def test_revoked_link_is_gone(client, super_admin):
    invitation, token = invite(inviter=super_admin)
    invitation_revoke(invitation_id=invitation.pk, actor=Actor.for_user(super_admin))
    response = _accept(client, token)
    assert response.status_code == 410 and "withdrawn" in response.content.decode()
    assert not User.objects.filter(email="new.person@example.com").exists()
    with pytest.raises(Conflict):
        invitation_revoke(invitation_id=invitation.pk, actor=Actor.for_user(super_admin))


def test_unknown_token_is_404(client):
    assert client.get(reverse("accounts:invitation", args=["x" * 43])).status_code == 404


def test_email_must_match(client, super_admin):
    invitation, token = invite(inviter=super_admin)
    response = _accept(client, token, email="someone.else@example.com")
    assert response.status_code == 400 and "different e-mail address" in response.content.decode()
    invitation.refresh_from_db()
    assert invitation.state == Invitation.State.PENDING
    assert AuditEvent.objects.filter(action="invitation.accept", outcome="denied").exists()


def test_page_hints_at_the_invited_address_without_revealing_it(client, super_admin):
    _invitation, token = invite(email="new.person@example.com", inviter=super_admin)
    text = client.get(reverse("accounts:invitation", args=[token])).content.decode()
    assert "new.person@example.com" not in text
    assert "ne••••••••@example.com" in text


def test_repeated_wrong_addresses_revoke_the_invitation(client, super_admin):
    invitation, token = invite(inviter=super_admin)
    limit = INVITATION_MAX_EMAIL_MISMATCHES
    statuses = [_accept(client, token, email=f"guess{i}@example.com").status_code for i in range(limit)]
    assert statuses == [400] * (limit - 1) + [410]
    invitation.refresh_from_db()
    assert invitation.state == Invitation.State.REVOKED and invitation.email_mismatches == limit
    # even the right address is now refused, with a sentence saying why
    response = _accept(client, token)
    assert response.status_code == 410 and "too many attempts with a different e-mail" in response.content.decode()
    assert not User.objects.filter(email=invitation.email).exists()
    assert AuditEvent.objects.filter(action="invitation.accept", outcome="denied").count() == limit
    revoke = AuditEvent.objects.get(action="invitation.revoke", target_id=str(invitation.pk))
    assert revoke.actor_type == AuditEvent.ActorType.SYSTEM


def test_weak_password_refused_and_nothing_written(client, super_admin):
    invitation, token = invite(inviter=super_admin)
    response = _accept(client, token, password="short")
    assert response.status_code == 400 and "too short" in response.content.decode()
    invitation.refresh_from_db()
    assert invitation.state == Invitation.State.PENDING
    assert not User.objects.filter(email=invitation.email).exists()


def test_resend_issues_a_new_token_and_the_old_one_stops_working(client, super_admin):
    invitation, old = invite(inviter=super_admin)
    with on_commit_run(execute=True):
        invitation_resend(invitation_id=invitation.pk, inviter=super_admin, actor=Actor.for_user(super_admin))
    new = last_link_token()
    assert new != old
    replaced = client.get(reverse("accounts:invitation", args=[old]))
    assert replaced.status_code == 410 and "replaced by a newer invitation e-mail" in replaced.content.decode()
    assert _accept(client, old).status_code == 410
    assert client.get(reverse("accounts:invitation", args=[new])).status_code == 200
    invitation.refresh_from_db()
    assert invitation.send_count == 2 and invitation.state == Invitation.State.PENDING
    assert not User.objects.filter(email=invitation.email).exists()
    assert AuditEvent.objects.filter(action="invitation.resend").exists()
    # every link sent is remembered only as its hash
    hashes = set(invitation.sends.values_list("token_hash", flat=True))
    assert hashes == {hashlib.sha256(t.encode()).hexdigest() for t in (old, new)}


def test_replaced_link_of_an_accepted_invitation_says_accepted(client, super_admin):
    invitation, old = invite(inviter=super_admin)
    with on_commit_run(execute=True):
        invitation_resend(invitation_id=invitation.pk, inviter=super_admin, actor=Actor.for_user(super_admin))
    new = last_link_token()
    assert _accept(client, new).status_code == 302
    response = type(client)().get(reverse("accounts:invitation", args=[old]))
    assert response.status_code == 410 and "already been accepted" in response.content.decode()


def test_rate_limit_per_inviter(super_admin):
    SystemSetting.objects.create(key="accounts.invitations_per_inviter_per_hour", value="2")
    with freeze_time(START) as clock:
        invite(email="one@example.com", inviter=super_admin)
        invite(email="two@example.com", inviter=super_admin)
        with pytest.raises(RateLimited) as caught:
            invite(email="three@example.com", inviter=super_admin)
        assert "try again after 11:00 UTC" in caught.value.message and caught.value.http_status == 429
        assert not Invitation.objects.filter(email="three@example.com").exists()
        clock.tick(dt.timedelta(hours=1, seconds=1))
        invite(email="three@example.com", inviter=super_admin)


def test_rate_limit_per_address_counts_resends(super_admin, boss):
    SystemSetting.objects.create(key="accounts.invitations_per_address_per_day", value="2")
    invitation, _token = invite(inviter=super_admin)
    invitation_resend(invitation_id=invitation.pk, inviter=boss, actor=Actor.for_user(boss))
    with pytest.raises(RateLimited) as caught:
        invitation_resend(invitation_id=invitation.pk, inviter=boss, actor=Actor.for_user(boss))
    assert "new.person@example.com has been sent 2 invitations" in caught.value.message


def test_several_pending_invitations_in_different_contexts(super_admin, organization):
    invite(email="dual@example.com", role="billing", inviter=super_admin)
    invite(email="dual@example.com", role="tenant_admin", inviter=super_admin, organization_id=organization.pk)
    assert Invitation.objects.filter(email="dual@example.com", state="pending").count() == 2
    with pytest.raises(Conflict):
        invite(email="dual@example.com", role="support", inviter=super_admin)


def test_bad_input_is_refused_clearly(super_admin, organization):
    with pytest.raises(ValidationError, match="not a valid e-mail"):
        invite(email="not-an-address")
    with pytest.raises(ValidationError, match="Unknown role"):
        invite(role="owner")
    with pytest.raises(ValidationError, match="needs the organisation"):
        invite(role="tenant_admin")
    with pytest.raises(ValidationError, match="Only Tenant CRM admin invitations name an organisation, not Support"):
        invite(role="support", organization_id=organization.pk)
    import uuid

    with pytest.raises(NotFound):
        invite(role="tenant_admin", organization_id=uuid.uuid4())
    with pytest.raises(Conflict, match="already has a control-plane account"):
        invite(email=super_admin.email)
    assert not Invitation.objects.exists()


def test_tenant_admin_acceptance_sends_the_password_hash(client, super_admin, organization):
    received = []

    def receiver(sender, invitation, password_hash, **kwargs):
        received.append((invitation.pk, invitation.organization_id, password_hash))

    invitation_accepted.connect(receiver, dispatch_uid="test-receiver")
    try:
        invitation, token = invite(
            email="crm.admin@acme.test", role="tenant_admin", inviter=None, organization_id=organization.pk
        )
        page = client.get(reverse("accounts:invitation", args=[token]))
        assert "the CRM of Acme Ltd" in page.content.decode()
        response = _accept(client, token, email="crm.admin@acme.test")
    finally:
        invitation_accepted.disconnect(dispatch_uid="test-receiver")
    assert response.status_code == 200 and "accepted" in response.content.decode()
    assert len(received) == 1
    pk, org_id, password_hash = received[0]
    assert pk == invitation.pk and org_id == organization.pk
    assert password_hash.startswith("argon2$") and check_password(NEW_PASSWORD, password_hash)
    assert not User.objects.filter(email="crm.admin@acme.test").exists()  # the CRM user lives in the tenant schema


def test_failing_receiver_undoes_the_acceptance(client, organization):
    def receiver(sender, **kwargs):
        raise RuntimeError("tenant database unavailable")

    invitation_accepted.connect(receiver, dispatch_uid="test-failing")
    try:
        invitation, token = invite(email="crm.admin@acme.test", role="tenant_admin", organization_id=organization.pk)
        with pytest.raises(RuntimeError):
            invitation_accept(token=token, email="crm.admin@acme.test", password=NEW_PASSWORD)
    finally:
        invitation_accepted.disconnect(dispatch_uid="test-failing")
    invitation.refresh_from_db()
    assert invitation.state == Invitation.State.PENDING


def test_admin_invites_resends_and_revokes_in_bulk(admin_session, super_admin):
    url = reverse("admin:accounts_invitation_add")
    assert admin_session.get(url).status_code == 200
    for email in ("a@example.com", "b@example.com"):
        response = admin_session.post(url, {"email": email, "role": "billing"})
        assert response.status_code == 302, response.content.decode()[:1500]
    assert Invitation.objects.filter(inviter=super_admin).count() == 2
    duplicate = admin_session.post(url, {"email": "a@example.com", "role": "billing"})
    assert duplicate.status_code == 200 and "already has a pending invitation" in duplicate.content.decode()
    ids = list(Invitation.objects.values_list("pk", flat=True))
    changelist = reverse("admin:accounts_invitation_changelist")
    admin_session.post(changelist, {"action": "resend", "_selected_action": ids})
    assert Invitation.objects.filter(send_count=2).count() == 2
    admin_session.post(changelist, {"action": "revoke", "_selected_action": ids})
    assert set(Invitation.objects.values_list("state", flat=True)) == {"revoked"}
    filtered = admin_session.get(changelist + "?state__exact=revoked")
    assert filtered.status_code == 200 and "a@example.com" in filtered.content.decode()
    assert AuditEvent.objects.filter(action="invitation.revoke").count() == 2


def test_admin_shows_the_organisation_by_name_linked_to_its_page(admin_session, super_admin, organization):
    from ghostcrm.organizations.models import Organization

    organization.name = "Acme <b>& Sons</b>"
    organization.save(update_fields=["name"])
    tenant, _ = invite(email="crm.admin@acme.test", role="tenant_admin", organization_id=organization.pk)
    invite(email="staff@example.com", role="billing")
    gone_org = Organization(name="Gone Ltd", slug="gone-ltd", admin_email="ceo@gone.test")
    gone_org.full_clean()
    gone_org.save()
    invite(email="orphan@example.com", role="tenant_admin", organization_id=gone_org.pk)
    Organization.objects.filter(pk=gone_org.pk).delete()  # no foreign key: the invitation keeps the bare UUID

    org_url = reverse("admin:organizations_organization_change", args=[organization.pk])
    linked = f'<a href="{org_url}">Acme &lt;b&gt;&amp; Sons&lt;/b&gt;</a>'
    page = admin_session.get(reverse("admin:accounts_invitation_changelist")).content.decode()
    assert linked in page
    assert f"{gone_org.pk} (no such organisation)" in page
    assert "<b>& Sons</b>" not in page
    # A control-plane invitation has no organisation: the list's empty-value dash, not "None".
    row = re.search(r"<tr>(?:(?!</tr>).)*staff@example\.com(?:(?!</tr>).)*</tr>", page, re.S).group(0)
    assert '<td class="field-organization">-</td>' in row
    assert str(organization.pk) not in page.replace(org_url, "")  # the raw UUID is gone from the list

    change = admin_session.get(reverse("admin:accounts_invitation_change", args=[tenant.pk])).content.decode()
    assert linked in change

    # The column sorts by the name (column 3 after the checkbox, email and role).
    zeta = Organization(name="Zeta Co", slug="zeta-co", admin_email="ceo@zeta.test")
    zeta.full_clean()
    zeta.save()
    invite(email="crm.admin@zeta.test", role="tenant_admin", organization_id=zeta.pk)
    changelist = reverse("admin:accounts_invitation_changelist")
    ascending = admin_session.get(changelist + "?o=3").content.decode()
    assert ascending.index("crm.admin@acme.test") < ascending.index("crm.admin@zeta.test")
    descending = admin_session.get(changelist + "?o=-3").content.decode()
    assert descending.index("crm.admin@zeta.test") < descending.index("crm.admin@acme.test")
    # Searching finds invitations by the organisation's name as well as by address or UUID.
    found = admin_session.get(changelist, {"q": "sons"}).content.decode()  # in no address, only in Acme's name
    assert "crm.admin@acme.test" in found and "crm.admin@zeta.test" not in found
    by_uuid = admin_session.get(changelist, {"q": str(organization.pk)}).content.decode()
    assert "crm.admin@acme.test" in by_uuid and "crm.admin@zeta.test" not in by_uuid


def test_invite_user_command(capsys, organization):
    with on_commit_run(execute=True):
        call_command("invite_user", "--email", "Cli.User@Example.com", "--role", "super_admin")
    assert "sent to cli.user@example.com as Super admin" in capsys.readouterr().out
    assert "/accounts/invitations/" in mail.outbox[-1].body
    call_command(
        "invite_user", "--email", "crm@acme.test", "--role", "tenant_admin", "--organization", str(organization.pk)
    )
    assert Invitation.objects.get(email="crm@acme.test").organization_id == organization.pk
    with pytest.raises(CommandError, match="needs the organisation"):
        call_command("invite_user", "--email", "x@example.com", "--role", "tenant_admin")
    with pytest.raises(CommandError, match=r"give a slug .*, a schema name .* or an id"):
        call_command("invite_user", "--email", "x@example.com", "--role", "tenant_admin", "--organization", "acme")


def test_periodic_jobs_are_scheduled():
    from django.conf import settings
    from django.utils.module_loading import import_string

    paths = {entry["func"] for entry in settings.PERIODIC_JOBS}
    for path in ("ghostcrm.accounts.jobs.invitations_expire_job", "ghostcrm.accounts.jobs.user_sessions_purge_job"):
        assert path in paths
        assert callable(import_string(path))


def test_session_purge_job_deletes_only_rows_past_the_absolute_timeout(staff_user):
    from ghostcrm.accounts.models import UserSession

    now = dt.datetime.now(dt.UTC)
    old = UserSession.objects.create(
        user=staff_user, session_key_hash="a" * 64, created_at=now - dt.timedelta(hours=14)
    )
    recent = UserSession.objects.create(
        user=staff_user, session_key_hash="b" * 64, created_at=now - dt.timedelta(hours=2)
    )
    assert jobs.user_sessions_purge_job() == 1
    assert not UserSession.objects.filter(pk=old.pk).exists() and UserSession.objects.filter(pk=recent.pk).exists()


def test_support_staff_cannot_invite_resend_or_revoke(client, super_admin, staff_user):
    invitation, _token = invite(inviter=super_admin)
    verified_login(client, staff_user)
    assert client.get(reverse("admin:accounts_invitation_changelist")).status_code == 200  # may view
    assert client.get(reverse("admin:accounts_invitation_add")).status_code == 302
    changelist = reverse("admin:accounts_invitation_changelist")
    for action in ("resend", "revoke"):
        client.post(changelist, {"action": action, "_selected_action": [invitation.pk]})
    invitation.refresh_from_db()
    assert invitation.state == Invitation.State.PENDING and invitation.send_count == 1
