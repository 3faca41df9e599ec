"""Signing in: the password step, the pending second factor, completing the login, and re-confirming the
password before a sensitive change."""

from __future__ import annotations

import functools
from typing import Any

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, login
from django.contrib.auth.signals import user_login_failed
from django.http import HttpRequest
from django.utils import timezone
from django_otp import login as otp_login
from django_otp.middleware import is_verified as otp_is_verified

from ghostcrm.accounts import lockout
from ghostcrm.accounts.models import User
from ghostcrm.audit.services import Actor, audit_record
from ghostcrm.core.errors import PermissionDenied, ValidationError

# Session keys (values are POSIX timestamps so any session serializer stores them).
PREAUTH_SESSION_KEY = "_gc_preauth"
REAUTH_AT_SESSION_KEY = "_gc_reauth_at"


def _now_ts() -> float:
    return timezone.now().timestamp()


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


def reauth_confirm(*, request: HttpRequest, password: str) -> None:
    """Ask for the password again before a sensitive change; failures count towards the lockout."""
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
