"""Writes for authentication security (MFA, sessions, lockout, passwords) and invitations."""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import secrets
import uuid
from typing import Any

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, get_user_model, login
from django.contrib.auth import password_validation as pv
from django.contrib.auth.hashers import make_password
from django.contrib.auth.signals import user_login_failed
from django.core import mail
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django_otp import login as otp_login
from django_otp.middleware import is_verified as otp_is_verified
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from ghostcrm.accounts import selectors
from ghostcrm.accounts.context import get_current_request
from ghostcrm.accounts.models import (
    CONTROL_PLANE_ROLES,
    Invitation,
    InvitationRole,
    InvitationSend,
    PasswordHistory,
    Role,
    User,
    UserSession,
)
from ghostcrm.accounts.signals import invitation_accepted
from ghostcrm.audit.models import AuditEvent
from ghostcrm.audit.services import Actor, audit_record, client_ip
from ghostcrm.core.errors import ApplicationError, Conflict, NotFound, PermissionDenied, TransientError, ValidationError
from ghostcrm.core.system_settings import setting_value

# Session keys (values are POSIX timestamps so any session serializer stores them).
PREAUTH_SESSION_KEY = "_gc_preauth"
AUTH_AT_SESSION_KEY = "_gc_auth_at"
SEEN_AT_SESSION_KEY = "_gc_seen_at"
REAUTH_AT_SESSION_KEY = "_gc_reauth_at"

BACKUP_CODE_COUNT = 10
INVITATION_MAX_EMAIL_MISMATCHES = 5  # acceptances with a wrong address before the invitation is revoked
DEMO_ADMIN_EMAIL = "demo-admin@ghostcrm.local"


class RateLimited(ApplicationError):
    code = "rate_limited"
    http_status = 429


class InvitationGone(ApplicationError):
    """The invitation exists but can no longer be used (accepted, expired or revoked): HTTP 410."""

    code = "invitation_gone"
    http_status = 410


class MFAFailed(ApplicationError):
    code = "mfa_failed"
    http_status = 400


def _now_ts() -> float:
    return timezone.now().timestamp()


def _request() -> HttpRequest | None:
    return get_current_request()


# --- Passwords ---------------------------------------------------------------------------------------


def password_history_record(*, user: User, keep: int) -> None:
    """Remember the user's new password hash (called by Django after every password change), keep ``keep``.

    A change of an existing account's password is audited and ends the account's other sessions; the first
    password of a new account is only remembered.
    """
    is_new_account = bool(getattr(user, "_gc_is_new", False))
    PasswordHistory.objects.create(user=user, password_hash=user.password)
    stale = list(PasswordHistory.objects.filter(user=user).values_list("pk", flat=True)[keep:])
    if stale:
        PasswordHistory.objects.filter(pk__in=stale).delete()
    if is_new_account:
        return
    request = _request()
    current_key = request.session.session_key if request is not None and hasattr(request, "session") else None
    ended = user_sessions_revoke(
        user=user,
        actor=Actor.for_user(getattr(request, "user", None)) if request is not None else Actor.system(),
        reason=UserSession.EndReason.PASSWORD,
        request=request,
        except_session_key=current_key,
        audit=False,
    )
    audit_record(
        action="auth.password.change",
        target=user,
        request=request,
        message=f"Password changed; {ended} other session(s) ended.",
    )


def password_validate(*, password: str, user: User) -> None:
    """Django's validators (length 12-128, common list, similarity, history); ValidationError with fields."""
    try:
        pv.validate_password(password, user=user)
    except DjangoValidationError as exc:
        raise ValidationError(" ".join(exc.messages), extra={"fields": {"password": exc.messages}}) from None


# --- Sign-in: password step, second factor, sessions -------------------------------------------------


def auth_preauth_begin(*, request: HttpRequest, user: User, next_url: str) -> None:
    """Remember that ``user`` passed the password step; the session is not logged in until the second factor."""
    request.session.cycle_key()  # a fresh key between the two steps, as well as at login
    request.session[PREAUTH_SESSION_KEY] = {
        "user_id": user.pk,
        "backend": getattr(user, "backend", settings.AUTHENTICATION_BACKENDS[-1]),
        "at": _now_ts(),
        "next": next_url,
    }
    audit_record(
        action="auth.login.step",
        actor=Actor.for_user(user),
        target=user,
        request=request,
        after={"factor": "password"},
        message="Password accepted; second factor required.",
    )


def auth_pending_user(*, request: HttpRequest) -> tuple[User | None, str]:
    """The user between the password and the second factor, and where to go afterwards.

    Either the pre-authenticated user of this session (valid ``ACCOUNTS_PREAUTH_MAX_AGE``) or a logged-in
    user whose session has no verified device.
    """
    state = request.session.get(PREAUTH_SESSION_KEY)
    if isinstance(state, dict):
        age = _now_ts() - float(state.get("at", 0))
        if age <= settings.ACCOUNTS_PREAUTH_MAX_AGE.total_seconds():
            user = User.objects.filter(pk=int(state.get("user_id") or 0), is_active=True).first()
            if user is not None:
                return user, str(state.get("next") or "")
        request.session.pop(PREAUTH_SESSION_KEY, None)
    current = getattr(request, "user", None)
    if current is not None and current.is_authenticated and not current.is_verified():
        return current, ""
    return None, ""


def auth_login_complete(*, request: HttpRequest, user: User, device: Any, factor: str) -> None:
    """Log the user in after both factors: new session key, device verified in the session, audited."""
    state = request.session.get(PREAUTH_SESSION_KEY) or {}
    backend = state.get("backend") or request.session.get(BACKEND_SESSION_KEY) or settings.AUTHENTICATION_BACKENDS[-1]
    request.session.pop(PREAUTH_SESSION_KEY, None)
    login(request, user, backend=backend)  # cycles the session key; a receiver starts the UserSession
    otp_login(request, device)
    # login() replaced request.user with a plain user; give it django-otp's attributes for this request.
    request.user.otp_device = device  # type: ignore[union-attr]
    request.user.is_verified = functools.partial(otp_is_verified, request.user)  # type: ignore[union-attr]
    request.session[REAUTH_AT_SESSION_KEY] = _now_ts()
    audit_record(
        action="auth.login.success",
        actor=Actor.for_user(user),
        target=user,
        request=request,
        after={"factors": ["password", factor]},
        message=f"Signed in with password and {factor}.",
    )


def auth_login_failed(*, request: HttpRequest, username: str, factor: str) -> None:
    """Report a failed second factor to django-axes (it counts towards the lockout) and the audit log."""
    user_login_failed.send(sender=__name__, credentials={"username": username, "factor": factor}, request=request)


def _backup_code_hash(code: str) -> str:
    """The stored form of a backup code. django-otp's StaticToken keeps tokens in clear text (16 characters),
    so we store the first 16 characters of the URL-safe SHA-256 of the code instead (96 bits); codes carry
    80 random bits, so the hash cannot be reversed by guessing."""
    normalised = "".join(ch for ch in code.lower() if ch.isalnum())
    digest = hashlib.sha256(f"ghostcrm-backup-code:{normalised}".encode()).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii")[:16]


def _new_backup_code() -> str:
    raw = base64.b32encode(secrets.token_bytes(10)).decode("ascii").lower()  # 16 characters, 80 bits
    return "-".join(raw[i : i + 4] for i in range(0, 16, 4))


def mfa_enrolment_device(*, user: User) -> TOTPDevice:
    """The unconfirmed authenticator being enrolled (created on first use; its secret shown until confirmed)."""
    device = selectors.user_totp_device(user=user, confirmed=False)
    if device is None:
        device = TOTPDevice(user=user, name="authenticator app", confirmed=False)
        device.full_clean()
        device.save()
    return device


def backup_codes_generate(*, user: User, request: HttpRequest | None = None, actor: Actor | None = None) -> list[str]:
    """Replace the user's backup codes with ``BACKUP_CODE_COUNT`` new ones; return them (shown once)."""
    codes = [_new_backup_code() for _ in range(BACKUP_CODE_COUNT)]
    with transaction.atomic():
        StaticDevice.objects.filter(user=user).delete()
        device = StaticDevice.objects.create(user=user, name=selectors.BACKUP_DEVICE_NAME, confirmed=True)
        StaticToken.objects.bulk_create([StaticToken(device=device, token=_backup_code_hash(c)) for c in codes])
        audit_record(
            action="auth.mfa.backup_codes",
            actor=actor,
            target=user,
            request=request,
            message=f"{BACKUP_CODE_COUNT} new backup codes generated; earlier codes no longer work.",
        )
    return codes


def mfa_enrol_confirm(*, request: HttpRequest, user: User, code: str) -> tuple[TOTPDevice, list[str]]:
    """Confirm the enrolling authenticator with a code from it; returns the device and new backup codes.

    Only for an account without a confirmed authenticator: replacing one goes through ``mfa_reset`` (own
    security page after the password, or a super admin), never through enrolment with the password alone.
    """
    with transaction.atomic():
        if TOTPDevice.objects.select_for_update().filter(user=user, confirmed=True).exists():
            raise Conflict("This account already has an authenticator; sign in with it, or reset it first.")
        device = TOTPDevice.objects.select_for_update().filter(user=user, confirmed=False).order_by("-id").first()
        if device is None:
            raise Conflict("There is no authenticator being enrolled; reload the enrolment page.")
        if not device.verify_token(code.strip().replace(" ", "")):
            raise MFAFailed("That code is not valid for the new authenticator; check the device's clock and try again.")
        TOTPDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        audit_record(
            action="auth.mfa.enrol",
            actor=Actor.for_user(user),
            target=user,
            request=request,
            after={"device": device.name},
            message="Authenticator app enrolled.",
        )
    codes = backup_codes_generate(user=user, request=request, actor=Actor.for_user(user))
    return device, codes


def mfa_verify(*, user: User, code: str) -> tuple[Any, str]:
    """Check a second-factor code: six digits are a TOTP code, anything else a backup code.

    Returns (device, factor). Each TOTP code works once (django-otp remembers the last time step used);
    a backup code is deleted when used. Raises MFAFailed.
    """
    cleaned = code.strip().replace(" ", "")
    if cleaned.isdigit() and len(cleaned) == 6:
        with transaction.atomic():
            device = TOTPDevice.objects.select_for_update().filter(user=user, confirmed=True).first()
            if device is not None and device.verify_token(cleaned):
                return device, "totp"
        raise MFAFailed(
            "That code is not valid (or was already used); enter the current code from your app.",
            extra={"factor": "totp"},
        )
    with transaction.atomic():
        backup = StaticDevice.objects.select_for_update().filter(user=user, confirmed=True).first()
        if backup is not None and cleaned and backup.verify_token(_backup_code_hash(cleaned)):
            return backup, "backup"
    raise MFAFailed("That backup code is not valid or was already used.", extra={"factor": "backup"})


def mfa_reset(*, user: User, actor: Actor, request: HttpRequest | None = None, reason: str = "") -> int:
    """Remove the user's authenticator and backup codes and end their sessions: next sign-in enrols again."""
    with transaction.atomic():
        removed = TOTPDevice.objects.filter(user=user).delete()[0] + StaticDevice.objects.filter(user=user).delete()[0]
        audit_record(action="auth.mfa.reset", actor=actor, target=user, request=request, message=reason or "MFA reset.")
    user_sessions_revoke(user=user, actor=actor, reason=UserSession.EndReason.REVOKED, request=request)
    return removed


def user_session_start(*, request: HttpRequest, user: User) -> UserSession | None:
    """Record a new logged-in session (called on every login)."""
    key = request.session.session_key
    if not key:
        request.session.save()
        key = request.session.session_key
    if not key:
        return None
    now = timezone.now()
    request.session[AUTH_AT_SESSION_KEY] = now.timestamp()
    request.session[SEEN_AT_SESSION_KEY] = now.timestamp()
    session, _ = UserSession.objects.update_or_create(
        session_key_hash=selectors.token_hash(key),
        defaults={
            "user": user,
            "ip_address": client_ip(request),
            "user_agent": request.headers.get("User-Agent", "")[:512],
            "created_at": now,
            "last_seen_at": now,
            "ended_at": None,
            "end_reason": "",
        },
    )
    return session


def user_session_end(
    *,
    session: UserSession,
    reason: str,
    actor: Actor | None = None,
    request: HttpRequest | None = None,
    audit: bool = True,
) -> bool:
    """End one session (it is refused from its next request on). False when it had already ended."""
    updated = UserSession.objects.filter(pk=session.pk, ended_at__isnull=True).update(
        ended_at=timezone.now(), end_reason=reason
    )
    if updated and audit:
        action = "auth.session.revoke" if reason in {"revoked", "disabled"} else "auth.session.end"
        audit_record(
            action=action,
            actor=actor,
            target=session.user,
            request=request,
            after={"session": session.pk, "ip_address": session.ip_address, "reason": reason},
            message=f"Session {session.pk} from {session.ip_address or 'unknown address'} ended ({reason}).",
        )
    return bool(updated)


def user_session_revoke(*, session_id: int, actor: Actor, request: HttpRequest | None = None) -> UserSession:
    session = UserSession.objects.select_related("user").filter(pk=session_id).first()
    if session is None:
        raise NotFound(f"There is no session {session_id}.")
    if not user_session_end(session=session, reason=UserSession.EndReason.REVOKED, actor=actor, request=request):
        raise Conflict(f"Session {session_id} had already ended.")
    return session


def user_sessions_revoke(
    *,
    user: User,
    actor: Actor,
    reason: str = UserSession.EndReason.REVOKED,
    request: HttpRequest | None = None,
    except_session_key: str | None = None,
    audit: bool = True,
) -> int:
    """End every active session of ``user`` (but ``except_session_key``); one audit event for all."""
    sessions = UserSession.objects.filter(user=user, ended_at__isnull=True)
    if except_session_key:
        sessions = sessions.exclude(session_key_hash=selectors.token_hash(except_session_key))
    ids = list(sessions.values_list("pk", flat=True))
    count = UserSession.objects.filter(pk__in=ids).update(ended_at=timezone.now(), end_reason=reason)
    if audit:
        audit_record(
            action="auth.session.revoke",
            actor=actor,
            target=user,
            request=request,
            after={"sessions": ids, "reason": reason},
            message=f"{count} session(s) ended ({reason}).",
        )
    return count


def user_sessions_purge(*, now: dt.datetime | None = None) -> int:
    """Delete session rows that can no longer be valid (older than the absolute timeout)."""
    cutoff = (now or timezone.now()) - settings.ACCOUNTS_SESSION_ABSOLUTE_TIMEOUT - dt.timedelta(hours=1)
    return UserSession.objects.filter(created_at__lt=cutoff).delete()[0]


def reauth_confirm(*, request: HttpRequest, password: str) -> None:
    """Ask for the password again before a sensitive change; failures count towards the lockout."""
    from ghostcrm.accounts import lockout

    user = request.user
    lockout.prepare_request(request)
    credentials = {"username": user.get_username()}
    if not lockout.handler().is_allowed(request, credentials):
        request.axes_locked_out = True  # type: ignore[attr-defined]
        request.axes_credentials = credentials  # type: ignore[attr-defined]
        raise PermissionDenied("Too many failed attempts; this account is locked for now.", code="locked_out")
    if not user.check_password(password):  # type: ignore[union-attr]
        auth_login_failed(request=request, username=user.get_username(), factor="reauth-password")
        raise ValidationError("That password is not correct.", extra={"fields": {"password": ["Not correct."]}})
    request.session[REAUTH_AT_SESSION_KEY] = _now_ts()
    audit_record(action="auth.reauth", target=user, request=request, message="Password confirmed again.")  # type: ignore[arg-type]


def reauth_is_recent(*, request: HttpRequest) -> bool:
    at = request.session.get(REAUTH_AT_SESSION_KEY)
    return at is not None and _now_ts() - float(at) <= settings.ACCOUNTS_REAUTH_MAX_AGE.total_seconds()


def user_unlock(*, email: str, actor: Actor, request: HttpRequest | None = None, ip_address: str | None = None) -> int:
    """Clear failed sign-ins (the lockout) of an address, optionally only from one IP; audited."""
    from ghostcrm.accounts import lockout

    username = email.strip().lower()
    if not username:
        raise ValidationError("Give the e-mail address of the account to unlock.")
    count = lockout.handler().reset_attempts(username=username, ip_address=ip_address or None)
    user = User.objects.filter(email__iexact=username).first()
    for device in TOTPDevice.objects.filter(user=user) if user else []:
        device.throttle_reset()
    audit_record(
        action="auth.unlock",
        actor=actor,
        target=user,
        target_type="" if user else "accounts.user",
        target_repr="" if user else username,
        request=request,
        after={"username": username, "ip_address": ip_address, "attempt_records_cleared": count},
        message=f"Unlocked {username}{' from ' + ip_address if ip_address else ''}: {count} attempt record(s) cleared.",
    )
    return count


# --- Invitations ---------------------------------------------------------------------------------------


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


def _invitation_send(*, invitation: Invitation, token: str, inviter: User | None) -> None:
    link = invitation_link(token)
    context = {
        "invitation": invitation,
        "link": link,
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
    try:
        message.send(fail_silently=False)
    except OSError as exc:  # SMTP and socket errors: the row is rolled back, the caller may retry
        raise TransientError(
            f"The invitation e-mail to {invitation.email} could not be sent ({exc}); try again."
        ) from exc
    now = timezone.now()
    InvitationSend.objects.create(
        invitation=invitation, inviter=inviter, email=invitation.email, sent_at=now, token_hash=invitation.token_hash
    )
    invitation.sent_at = now
    invitation.send_count += 1
    invitation.save(update_fields=["sent_at", "send_count"])


def invitation_create(
    *, email: str, role: str, inviter: User | None, organization_id: uuid.UUID | None = None, actor: Actor
) -> Invitation:
    """Invite ``email`` to a role (``tenant_admin`` with ``organization_id``); sends the e-mail."""
    email = (email or "").strip().lower()
    try:
        validate_email(email)
    except DjangoValidationError:
        raise ValidationError(
            f"{email!r} is not a valid e-mail address.", extra={"fields": {"email": ["Invalid."]}}
        ) from None
    if role not in InvitationRole.values:
        raise ValidationError(
            f"Unknown role {role!r}; choose one of {', '.join(InvitationRole.values)}.",
            extra={"fields": {"role": ["Unknown."]}},
        )
    if role == InvitationRole.TENANT_ADMIN:
        if organization_id is None:
            raise ValidationError("A tenant_admin invitation needs the organisation it administers.")
        from ghostcrm.organizations.models import Organization

        if not Organization.objects.filter(pk=organization_id).exists():
            raise NotFound(f"There is no organisation {organization_id}.")
    elif organization_id is not None:
        raise ValidationError(f"Only tenant_admin invitations name an organisation, not {role} ones.")
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
            request=_request(),
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
            request=_request(),
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
            request=_request(),
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
    that fails undoes the acceptance and the link still works.
    """
    user: User | None = None
    with transaction.atomic():
        invitation = invitation_for_link(token=token, for_update=True)
        if (email or "").strip().lower() != invitation.email:
            mismatch = invitation  # audited below, outside the transaction this error rolls back
        else:
            mismatch = None
            user = _invitation_accept_locked(
                invitation=invitation, password=password, first_name=first_name, last_name=last_name, request=request
            )
    if mismatch is not None:
        _invitation_mismatch_record(invitation_id=mismatch.pk, typed=email, request=request)
        raise ValidationError(
            "This invitation was sent to a different e-mail address; type the address it was sent to.",
            extra={"fields": {"email": ["Does not match the invitation."]}},
        )
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
    *, invitation: Invitation, password: str, first_name: str, last_name: str, request: HttpRequest | None
) -> User | None:
    probe = get_user_model()(email=invitation.email, first_name=first_name, last_name=last_name)
    password_validate(password=password, user=probe)
    user: User | None = None
    if invitation.is_control_plane:
        if User.objects.filter(email__iexact=invitation.email).exists():
            raise Conflict(f"{invitation.email} already has an account; sign in instead.")
        user = User.objects.create_user(
            email=invitation.email,
            password=password,
            role=Role(invitation.role),
            first_name=first_name[:150],
            last_name=last_name[:150],
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


# --- Demo --------------------------------------------------------------------------------------------


def demo_admin_create() -> tuple[User, str]:
    """Create (or reset) the demo super admin for ``make demo``; returns it and its new random password.

    Refused when GHOSTCRM_ENV=production. The password is random on every call and the account's MFA is
    reset, so the person running the demo enrols an authenticator at first sign-in (the real flow).
    """
    if settings.GHOSTCRM_ENV == "production":
        raise PermissionDenied(
            "The demo admin account is never created when GHOSTCRM_ENV=production; invite administrators with "
            "`python manage.py invite_user --email you@example.com --role super_admin` instead.",
            code="demo_refused",
        )
    password = secrets.token_urlsafe(18)
    actor = Actor.system("demo")
    with transaction.atomic():
        user = User.objects.filter(email=DEMO_ADMIN_EMAIL).first()
        if user is None:
            user = User.objects.create_superuser(
                email=DEMO_ADMIN_EMAIL, password=password, first_name="Demo", last_name="Admin"
            )
        else:
            user.set_password(password)
            user.role = Role.SUPER_ADMIN
            user.is_active = True
            user.is_staff = True
            user.save()
            TOTPDevice.objects.filter(user=user).delete()
            StaticDevice.objects.filter(user=user).delete()
        audit_record(
            action="auth.demo_admin",
            actor=actor,
            target=user,
            message=f"Demo super admin {DEMO_ADMIN_EMAIL} created or reset (GHOSTCRM_ENV={settings.GHOSTCRM_ENV}).",
        )
    return user, password
