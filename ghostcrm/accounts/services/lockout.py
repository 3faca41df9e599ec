"""Lifting the sign-in lockout (django-axes' failed attempts, and django-otp's throttle on the account)."""

from __future__ import annotations

from django.http import HttpRequest
from django_otp.plugins.otp_totp.models import TOTPDevice

from ghostcrm.accounts import lockout as axes_lockout
from ghostcrm.accounts.models import User
from ghostcrm.audit.services import Actor, audit_record
from ghostcrm.core.errors import ValidationError


def user_unlock(*, email: str, actor: Actor, request: HttpRequest | None = None, ip_address: str | None = None) -> int:
    """Clear failed sign-ins (the lockout) of an address, optionally only from one IP; audited."""
    username = email.strip().lower()
    if not username:
        raise ValidationError(
            "Give the e-mail address of the account to unlock.", extra={"fields": {"email": ["Required."]}}
        )
    count = axes_lockout.handler().reset_attempts(username=username, ip_address=ip_address or None)
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
