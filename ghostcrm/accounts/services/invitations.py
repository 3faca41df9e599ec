"""Invitations: create, resend, revoke, open by link, accept, expire.

The invitation e-mail is rendered inside the transaction that records it and handed to the mail server only
once that transaction commits (``transaction.on_commit``): a rolled-back invitation sends nothing, and no
database lock is held while an SMTP server answers.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import secrets
import uuid

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core import mail
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from ghostcrm.accounts import selectors
from ghostcrm.accounts.context import get_current_request
from ghostcrm.accounts.errors import InvitationGone, RateLimited
from ghostcrm.accounts.models import CONTROL_PLANE_ROLES, Invitation, InvitationRole, InvitationSend, Role, User
from ghostcrm.accounts.services.passwords import password_errors
from ghostcrm.accounts.signals import invitation_accepted
from ghostcrm.audit.models import AuditEvent
from ghostcrm.audit.services import Actor, audit_record
from ghostcrm.core.errors import Conflict, NotFound, ValidationError
from ghostcrm.core.system_settings import setting_value
from ghostcrm.organizations.models import Organization

log = logging.getLogger(__name__)

INVITATION_MAX_EMAIL_MISMATCHES = 5  # acceptances with a wrong address before the invitation is revoked
TENANT_ADMIN_LABEL = InvitationRole.TENANT_ADMIN.label


def _role_label(role: str) -> str:
    return str(InvitationRole(role).label) if role in InvitationRole.values else role


def _rate_limit_check(*, inviter: User | None, email: str) -> None:
    """Refuse a send over the per-inviter or per-address limit. Call inside the transaction that records the
    send: the inviter's row and the address's invitations are locked, so concurrent sends queue up here."""
    now = timezone.now()
    if inviter is not None:
        User.objects.select_for_update().filter(pk=inviter.pk).first()
    list(Invitation.objects.select_for_update().filter(email=email).values_list("pk", flat=True))
    if inviter is not None:
        limit = int(setting_value("accounts.invitations_per_inviter_per_hour"))
        window = InvitationSend.objects.filter(inviter=inviter, sent_at__gte=now - dt.timedelta(hours=1))
        if window.count() >= limit:
            oldest = window.order_by("sent_at").values_list("sent_at", flat=True).first() or now
            retry = oldest + dt.timedelta(hours=1)
            raise RateLimited(
                f"You have sent {limit} invitations in the last hour, the limit "
                f"(system setting accounts.invitations_per_inviter_per_hour); try again after "
                f"{retry:%H:%M} UTC.",
                extra={"retry_after": max(1, int((retry - now).total_seconds()))},
            )
    limit = int(setting_value("accounts.invitations_per_address_per_day"))
    window = InvitationSend.objects.filter(email=email, sent_at__gte=now - dt.timedelta(days=1))
    if window.count() >= limit:
        oldest = window.order_by("sent_at").values_list("sent_at", flat=True).first() or now
        retry = oldest + dt.timedelta(days=1)
        raise RateLimited(
            f"{email} has been sent {limit} invitations in the last 24 hours, the limit "
            f"(system setting accounts.invitations_per_address_per_day); try again after {retry:%Y-%m-%d %H:%M} UTC.",
            extra={"retry_after": max(1, int((retry - now).total_seconds()))},
        )


def _issue_token(invitation: Invitation) -> str:
    token = secrets.token_urlsafe(32)  # 32 random bytes, URL-safe
    invitation.token_hash = selectors.token_hash(token)
    invitation.expires_at = timezone.now() + dt.timedelta(hours=int(setting_value("accounts.invitation_expiry_hours")))
    return token


def invitation_link(token: str) -> str:
    return settings.SITE_URL + reverse("accounts:invitation", kwargs={"token": token})


def _invitation_message(*, invitation: Invitation, token: str, inviter: User | None) -> mail.EmailMultiAlternatives:
    context = {
        "invitation": invitation,
        "link": invitation_link(token),
        "inviter_name": inviter.get_full_name() if inviter else "GhostCRM",
        "inviter_email": inviter.email if inviter else "",
        "target": selectors.invitation_target_label(invitation=invitation),
        "expires_at": invitation.expires_at,
        "site_url": settings.SITE_URL,
    }
    subject = f"You are invited to {context['target']}"
    message = mail.EmailMultiAlternatives(
        subject=subject[:200],
        body=render_to_string("accounts/email/invitation.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[invitation.email],
    )
    message.attach_alternative(render_to_string("accounts/email/invitation.html", context), "text/html")
    return message


def _invitation_deliver(*, invitation_id: int, email: str, message: mail.EmailMultiAlternatives) -> None:
    """Send one invitation e-mail, after the commit that recorded it. A mail server that refuses is recorded
    (audit event ``invitation.send``, outcome failure) for a super admin to resend; the invitation stays."""
    try:
        message.send(fail_silently=False)
    except OSError as exc:  # SMTP and socket errors
        log.warning("invitation %s: the e-mail to %s could not be sent: %s", invitation_id, email, exc)
        audit_record(
            action="invitation.send",
            actor=Actor.system("invitation e-mail"),
            target_type="accounts.invitation",
            target_id=str(invitation_id),
            target_repr=email,
            outcome=AuditEvent.Outcome.FAILURE,
            message=f"The invitation e-mail to {email} could not be sent ({exc}); resend the invitation.",
        )


def _invitation_send(*, invitation: Invitation, token: str, inviter: User | None) -> None:
    """Record the send (what the rate limits count) and queue the e-mail for when the transaction commits."""
    message = _invitation_message(invitation=invitation, token=token, inviter=inviter)
    now = timezone.now()
    InvitationSend.objects.create(
        invitation=invitation, inviter=inviter, email=invitation.email, sent_at=now, token_hash=invitation.token_hash
    )
    invitation.sent_at = now
    invitation.send_count += 1
    invitation.save(update_fields=["sent_at", "send_count"])
    transaction.on_commit(
        functools.partial(_invitation_deliver, invitation_id=invitation.pk, email=invitation.email, message=message)
    )


def _invitation_field_errors(*, email: str, role: str, organization_id: uuid.UUID | None) -> dict[str, list[str]]:
    """Every problem with the invitation's fields, in form order (email, role, organization)."""
    errors: dict[str, list[str]] = {}
    try:
        validate_email(email)
    except DjangoValidationError:
        errors["email"] = [f"{email!r} is not a valid e-mail address."]
    if role not in InvitationRole.values:
        labels = ", ".join(f"{value} ({label})" for value, label in InvitationRole.choices)
        errors["role"] = [f"Unknown role {role!r}; choose one of {labels}."]
    elif role == InvitationRole.TENANT_ADMIN and organization_id is None:
        errors["organization"] = [f"A {TENANT_ADMIN_LABEL} invitation needs the organisation it administers."]
    elif role != InvitationRole.TENANT_ADMIN and organization_id is not None:
        errors["organization"] = [
            f"Only {TENANT_ADMIN_LABEL} invitations name an organisation, not {_role_label(role)} ones."
        ]
    return errors


def invitation_create(
    *, email: str, role: str, inviter: User | None, organization_id: uuid.UUID | None = None, actor: Actor
) -> Invitation:
    """Invite ``email`` to a role (``tenant_admin`` with ``organization_id``); the e-mail goes out on commit.

    Raises one ValidationError carrying every field problem (``extra["fields"]``, in form order).
    """
    email = (email or "").strip().lower()
    errors = _invitation_field_errors(email=email, role=role, organization_id=organization_id)
    if errors:
        raise ValidationError(" ".join(m for ms in errors.values() for m in ms), extra={"fields": errors})
    # A Tenant CRM admin invitation (checked above) names an organisation that exists.
    if organization_id is not None and not Organization.objects.filter(pk=organization_id).exists():
        raise NotFound(f"There is no organisation {organization_id}.")
    if role in CONTROL_PLANE_ROLES and User.objects.filter(email__iexact=email).exists():
        raise Conflict(f"{email} already has a control-plane account; change its role instead of inviting it.")
    with transaction.atomic():
        _rate_limit_check(inviter=inviter, email=email)
        invitation = Invitation(email=email, role=role, inviter=inviter, organization_id=organization_id)
        invitation.context = Invitation.context_for(organization_id)
        if Invitation.objects.filter(email=email, context=invitation.context, state=Invitation.State.PENDING).exists():
            raise Conflict(f"{email} already has a pending invitation here; resend or revoke it instead.")
        token = _issue_token(invitation)
        invitation.full_clean(validate_constraints=False)
        try:
            with transaction.atomic():
                invitation.save()
        except IntegrityError:
            raise Conflict(f"{email} already has a pending invitation here; resend or revoke it instead.") from None
        _invitation_send(invitation=invitation, token=token, inviter=inviter)
        audit_record(
            action="invitation.create",
            actor=actor,
            target=invitation,
            organization_id=organization_id,
            request=get_current_request(),
            after={"email": email, "role": role, "expires_at": invitation.expires_at.isoformat()},
            message=f"Invited {email} to {selectors.invitation_target_label(invitation=invitation)}.",
        )
    return invitation


def _locked_pending(invitation_id: int, *, verb: str) -> Invitation:
    """The invitation, locked for this transaction; Conflict unless it is still pending (``verb``: "resent")."""
    invitation = Invitation.objects.select_for_update().filter(pk=invitation_id).first()
    if invitation is None:
        raise NotFound(f"There is no invitation {invitation_id}.")
    if invitation.state != Invitation.State.PENDING:
        raise Conflict(f"The invitation for {invitation.email} is {invitation.state}; only pending ones are {verb}.")
    return invitation


def invitation_resend(*, invitation_id: int, inviter: User | None, actor: Actor) -> Invitation:
    """Send a new link (new token and expiry); the previous link stops working."""
    with transaction.atomic():
        invitation = _locked_pending(invitation_id, verb="resent")
        _rate_limit_check(inviter=inviter, email=invitation.email)
        token = _issue_token(invitation)
        invitation.save(update_fields=["token_hash", "expires_at"])
        _invitation_send(invitation=invitation, token=token, inviter=inviter)
        audit_record(
            action="invitation.resend",
            actor=actor,
            target=invitation,
            request=get_current_request(),
            after={"expires_at": invitation.expires_at.isoformat(), "send_count": invitation.send_count},
            message=f"Invitation for {invitation.email} resent with a new link; the old link no longer works.",
        )
    return invitation


def invitation_revoke(*, invitation_id: int, actor: Actor) -> Invitation:
    with transaction.atomic():
        invitation = _locked_pending(invitation_id, verb="revoked")
        invitation.state = Invitation.State.REVOKED
        invitation.revoked_at = timezone.now()
        invitation.save(update_fields=["state", "revoked_at"])
        audit_record(
            action="invitation.revoke",
            actor=actor,
            target=invitation,
            request=get_current_request(),
            before={"state": "pending"},
            after={"state": "revoked"},
            message=f"Invitation for {invitation.email} revoked.",
        )
    return invitation


def invitation_gone_reason(invitation: Invitation) -> str | None:
    """Why an invitation link cannot be used any more, as a sentence; None when it still can."""
    if invitation.state == Invitation.State.ACCEPTED:
        return "This invitation has already been accepted. Sign in instead, or ask for a new invitation."
    if invitation.state == Invitation.State.REVOKED:
        if invitation.email_mismatches >= INVITATION_MAX_EMAIL_MISMATCHES:
            return (
                "This invitation was withdrawn after too many attempts with a different e-mail address. "
                "Ask the person who invited you for a new one."
            )
        return "This invitation was withdrawn. Ask the person who invited you for a new one."
    if invitation.state == Invitation.State.EXPIRED or invitation.expires_at <= timezone.now():
        return (
            f"This invitation expired on {invitation.expires_at:%Y-%m-%d %H:%M} UTC. "
            "Ask the person who invited you to send it again."
        )
    return None


def invitation_for_link(*, token: str, for_update: bool = False) -> Invitation:
    """The usable invitation an invitation link opens.

    Raises NotFound (404) for a link that never existed and InvitationGone (410, with a sentence) for one
    that was accepted, expired, revoked or replaced by a resend: the person holding it learns what to do.
    """
    invitation = selectors.invitation_for_token(token=token, for_update=for_update)
    if invitation is None:
        send = selectors.invitation_send_for_token(token=token)
        if send is None:
            raise NotFound("This invitation link is not valid. Check that you copied the whole link.")
        replaced = send.invitation
        gone = invitation_gone_reason(replaced)
        if gone is None:
            sent = f" on {replaced.sent_at:%Y-%m-%d %H:%M} UTC" if replaced.sent_at else ""
            gone = (
                f"This link was replaced by a newer invitation e-mail sent{sent}. "
                "Use the link in the most recent e-mail; this one no longer works."
            )
        raise InvitationGone(gone)
    gone = invitation_gone_reason(invitation)
    if gone:
        raise InvitationGone(gone)
    return invitation


def invitation_accept(
    *,
    token: str,
    email: str,
    password: str,
    first_name: str = "",
    last_name: str = "",
    request: HttpRequest | None = None,
) -> tuple[Invitation, User | None]:
    """Accept an invitation by POST: the e-mail must match; sets the password.

    Control-plane roles get an account (MFA enrolment follows at their first sign-in step); a tenant_admin
    acceptance sends ``invitation_accepted`` with the Argon2 hash inside this transaction, so a receiver
    that fails undoes the acceptance and the link still works. A wrong address and an unacceptable password
    are reported together (one ValidationError, fields ``email`` then ``password``).
    """
    user: User | None = None
    with transaction.atomic():
        invitation = invitation_for_link(token=token, for_update=True)
        probe = get_user_model()(email=invitation.email, first_name=first_name, last_name=last_name)
        errors: dict[str, list[str]] = {}
        if (email or "").strip().lower() != invitation.email:
            errors["email"] = ["Does not match the invitation."]
        if password_problems := password_errors(password=password, user=probe):
            errors["password"] = password_problems
        if not errors:
            user = _invitation_accept_locked(invitation=invitation, password=password, probe=probe, request=request)
    if "email" in errors:
        _invitation_mismatch_record(invitation_id=invitation.pk, typed=email, request=request)
    if errors:
        sentences = []
        if "email" in errors:
            sentences.append("This invitation was sent to a different e-mail address; type the address it was sent to.")
        sentences.extend(errors.get("password", []))
        raise ValidationError(" ".join(sentences), extra={"fields": errors})
    return invitation, user


def _invitation_mismatch_record(*, invitation_id: int, typed: str, request: HttpRequest | None) -> None:
    """Count an acceptance refused for a wrong address (audited); the last allowed one revokes the invitation.

    The link itself is 32 random bytes, but the invited address is the second thing its holder must know:
    capping wrong guesses per invitation (not per IP) keeps a forwarded or leaked link from being worked on.
    """
    with transaction.atomic():
        invitation = Invitation.objects.select_for_update().get(pk=invitation_id)
        invitation.email_mismatches += 1
        invitation.save(update_fields=["email_mismatches"])
        audit_record(
            action="invitation.accept",
            actor=Actor(AuditEvent.ActorType.USER, "", (typed or "")[:255]),
            target=invitation,
            request=request,
            outcome=AuditEvent.Outcome.DENIED,
            after={"email_mismatches": invitation.email_mismatches},
            message="E-mail address did not match the invitation.",
        )
        if (
            invitation.email_mismatches < INVITATION_MAX_EMAIL_MISMATCHES
            or invitation.state != Invitation.State.PENDING
        ):
            return
        invitation.state = Invitation.State.REVOKED
        invitation.revoked_at = timezone.now()
        invitation.save(update_fields=["state", "revoked_at"])
        audit_record(
            action="invitation.revoke",
            actor=Actor.system("invitation_accept"),
            target=invitation,
            request=request,
            before={"state": "pending"},
            after={"state": "revoked"},
            message=(
                f"Invitation for {invitation.email} revoked after {invitation.email_mismatches} acceptances "
                "with a different e-mail address."
            ),
        )
    raise InvitationGone(invitation_gone_reason(invitation) or "This invitation was withdrawn.")


def _invitation_accept_locked(
    *, invitation: Invitation, password: str, probe: User, request: HttpRequest | None
) -> User | None:
    user: User | None = None
    if invitation.is_control_plane:
        if User.objects.filter(email__iexact=invitation.email).exists():
            raise Conflict(f"{invitation.email} already has an account; sign in instead.")
        user = User.objects.create_user(
            email=invitation.email,
            password=password,
            role=Role(invitation.role),
            first_name=probe.first_name[:150],
            last_name=probe.last_name[:150],
        )
        invitation.accepted_user = user
    target = selectors.invitation_target_label(invitation=invitation)
    invitation.state = Invitation.State.ACCEPTED
    invitation.accepted_at = timezone.now()
    invitation.save(update_fields=["state", "accepted_at", "accepted_user"])
    audit_record(
        action="invitation.accept",
        actor=Actor(AuditEvent.ActorType.USER, str(user.pk) if user else "", invitation.email),
        target=invitation,
        request=request,
        before={"state": "pending"},
        after={"state": "accepted", "role": invitation.role},
        message=f"{invitation.email} accepted the invitation to {target}.",
    )
    if not invitation.is_control_plane:
        invitation_accepted.send(sender=Invitation, invitation=invitation, password_hash=make_password(password))
    return user


def invitations_expire(*, now: dt.datetime | None = None) -> int:
    """Mark pending invitations past their expiry as expired (the periodic job); returns how many."""
    now = now or timezone.now()
    count = 0
    for invitation_id in list(selectors.invitations_pending_expired(now=now).values_list("pk", flat=True)):
        with transaction.atomic():
            invitation = Invitation.objects.select_for_update().filter(pk=invitation_id).first()
            if invitation is None or invitation.state != Invitation.State.PENDING or invitation.expires_at > now:
                continue  # accepted, revoked or resent meanwhile
            invitation.state = Invitation.State.EXPIRED
            invitation.expired_at = now
            invitation.save(update_fields=["state", "expired_at"])
            audit_record(
                action="invitation.expire",
                actor=Actor.system("invitations_expire"),
                target=invitation,
                before={"state": "pending"},
                after={"state": "expired"},
                message=f"Invitation for {invitation.email} expired unused.",
            )
            count += 1
    return count
