"""The second factor: authenticator enrolment, TOTP and backup-code checks, backup codes, and MFA resets
(by the user, by a super admin's action, or by deleting a device in the admin)."""

from __future__ import annotations

import base64
import hashlib
import math
import secrets
from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from ghostcrm.accounts import selectors
from ghostcrm.accounts.errors import MFAFailed, MFAThrottled
from ghostcrm.accounts.models import User, UserSession
from ghostcrm.accounts.services.sessions import user_sessions_revoke
from ghostcrm.audit.services import Actor, audit_record
from ghostcrm.core.errors import Conflict, full_clean_or_raise

BACKUP_CODE_COUNT = 10


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


def _throttle_check(device: TOTPDevice) -> None:
    """Refuse, unchecked, a code sent while django-otp's throttle after wrong codes is still running.

    Without this, ``verify_token`` answers False for a *correct* code in that window, and the user is told
    the code is wrong when it was never compared.
    """
    allowed, info = device.verify_is_allowed()
    if allowed:
        return
    until = (info or {}).get("locked_until")
    if until is None:
        raise MFAThrottled("Too many wrong codes in a row; wait a few seconds, then try again.")
    seconds = max(1, math.ceil((until - timezone.now()).total_seconds()))
    raise MFAThrottled(
        f"Too many wrong codes in a row, so codes are not checked until {until:%H:%M:%S} UTC "
        f"(in {seconds} second{'s' if seconds != 1 else ''}). This code was not checked: wait, then enter the "
        "code your app shows at that time.",
        extra={"factor": "totp", "retry_after": seconds, "retry_at": until.isoformat()},
    )


def mfa_enrolment_device(*, user: User) -> TOTPDevice:
    """The unconfirmed authenticator being enrolled (created on first use; its secret shown until confirmed)."""
    device = selectors.user_totp_device(user=user, confirmed=False)
    if device is None:
        device = TOTPDevice(user=user, name="authenticator app", confirmed=False)
        full_clean_or_raise(device)
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
        _throttle_check(device)
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
    a backup code is deleted when used. Raises MFAFailed, or MFAThrottled for a TOTP code sent while
    django-otp's throttle after wrong codes is running (the code is then not checked at all).
    """
    cleaned = code.strip().replace(" ", "")
    if cleaned.isdigit() and len(cleaned) == 6:
        with transaction.atomic():
            device = TOTPDevice.objects.select_for_update().filter(user=user, confirmed=True).first()
            if device is not None:
                _throttle_check(device)
                if device.verify_token(cleaned):
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


def mfa_devices_delete(*, devices: Iterable[Device], actor: Actor, request: HttpRequest | None = None) -> int:
    """Delete second-factor devices (the admin's delete page and bulk delete): an MFA reset of their owners.

    As ``mfa_reset``, each owner's sessions end: a session verified with a device that no longer exists
    must not outlive it. Returns the number of devices deleted.
    """
    devices = list(devices)
    owners: dict[int, User] = {}
    with transaction.atomic():
        for device in devices:
            device.delete()
            audit_record(
                action="auth.mfa.reset",
                actor=actor,
                target=device.user,
                request=request,
                message=f"Device {device.name!r} deleted in the admin.",
            )
            owners[device.user.pk] = device.user
    for owner in owners.values():
        user_sessions_revoke(user=owner, actor=actor, reason=UserSession.EndReason.REVOKED, request=request)
    return len(devices)
