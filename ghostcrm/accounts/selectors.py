"""Reads for authentication security and invitations."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from ghostcrm.accounts.models import Invitation, InvitationSend, PasswordHistory, User, UserSession
from ghostcrm.organizations.models import Organization

BACKUP_DEVICE_NAME = "backup codes"


def token_hash(token: str) -> str:
    """SHA-256 of an invitation token or session key, hex: the only form in which either is stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def password_recent_hashes(*, user: User, limit: int) -> list[str]:
    """The user's newest ``limit`` password hashes, the current one first (even if history predates it)."""
    hashes = list(
        PasswordHistory.objects.filter(user=user)
        .order_by("-created_at", "-id")
        .values_list("password_hash", flat=True)[:limit]
    )
    stored = User.objects.filter(pk=user.pk).values_list("password", flat=True).first()
    if stored and stored not in hashes:
        hashes = [stored, *hashes][:limit]
    return [h for h in hashes if h and not h.startswith("!")]


def user_totp_device(*, user: User, confirmed: bool = True) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=confirmed).order_by("-id").first()


def user_has_mfa(*, user: User) -> bool:
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def users_with_mfa_flag(users: QuerySet[User]) -> QuerySet[User]:
    """``users`` annotated with ``has_mfa`` (a confirmed authenticator), for lists."""
    return users.annotate(has_mfa=Exists(TOTPDevice.objects.filter(user=OuterRef("pk"), confirmed=True)))


def user_backup_device(*, user: User) -> StaticDevice | None:
    return StaticDevice.objects.filter(user=user, name=BACKUP_DEVICE_NAME, confirmed=True).first()


def user_backup_codes_left(*, user: User) -> int:
    device = user_backup_device(user=user)
    return 0 if device is None else device.token_set.count()


def user_sessions_active(*, user: User | None = None) -> QuerySet[UserSession]:
    sessions = UserSession.objects.filter(ended_at__isnull=True).select_related("user")
    return sessions if user is None else sessions.filter(user=user)


def user_session_for_key(*, session_key: str) -> UserSession | None:
    return UserSession.objects.filter(session_key_hash=token_hash(session_key)).first()


def _plausible_token(token: str) -> bool:
    return bool(token) and len(token) <= 200


def invitation_for_token(*, token: str, for_update: bool = False) -> Invitation | None:
    """The invitation whose current link carries ``token`` (by hash), whatever its state; None otherwise."""
    if not _plausible_token(token):
        return None
    invitations = Invitation.objects.select_for_update() if for_update else Invitation.objects.select_related("inviter")
    return invitations.filter(token_hash=token_hash(token)).first()


def invitation_send_for_token(*, token: str) -> InvitationSend | None:
    """The invitation e-mail whose link carried ``token``, also when a resend has since replaced that link."""
    if not _plausible_token(token):
        return None
    return InvitationSend.objects.select_related("invitation").filter(token_hash=token_hash(token)).first()


def invitation_target_label(*, invitation: Invitation) -> str:
    """What the invitation is to, in words: "the GhostCRM control plane as Support", or the organisation."""
    if invitation.organization_id is None:
        return f"the GhostCRM control plane as {invitation.get_role_display()}"
    name = organization_name(organization_id=invitation.organization_id)
    return f"the CRM of {name} as its administrator"


def organization_name(*, organization_id: uuid.UUID) -> str:
    name = Organization.objects.filter(pk=organization_id).values_list("name", flat=True).first()
    return name or f"organisation {organization_id}"


def invitations_pending_expired(*, now: Any = None) -> QuerySet[Invitation]:
    return Invitation.objects.filter(state=Invitation.State.PENDING, expires_at__lte=now or timezone.now())
