"""Session security for every request: idle and absolute timeouts, revoked sessions, the MFA gate on
the admin, and "confirm your password" before sensitive changes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone

from ghostcrm.accounts import selectors
from ghostcrm.accounts.context import current_request
from ghostcrm.accounts.models import UserSession
from ghostcrm.accounts.services.sessions import AUTH_AT_SESSION_KEY, SEEN_AT_SESSION_KEY
from ghostcrm.accounts.services.signin import reauth_is_recent

# Views that change an e-mail address, a password or MFA: reachable only shortly after the password was
# typed (at sign-in or on the confirmation page).
REAUTH_VIEW_NAMES = frozenset(
    {
        "admin:accounts_user_change",
        "admin:auth_user_password_change",
        "admin:password_change",
        "admin:otp_totp_totpdevice_change",
        "admin:otp_totp_totpdevice_delete",
        "admin:otp_static_staticdevice_change",
        "admin:otp_static_staticdevice_delete",
        "accounts:mfa_reset",
        "accounts:backup_codes",
    }
)
SEEN_UPDATE_EVERY = 60  # seconds: last-seen precision, so a busy page does not write on every request


def _redirect_with_next(url_name: str, request: HttpRequest) -> HttpResponseRedirect:
    return HttpResponseRedirect(f"{reverse(url_name)}?{urlencode({'next': request.get_full_path()})}")


class SessionSecurityMiddleware:
    """Install after AuthenticationMiddleware, OTPMiddleware and MessageMiddleware."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = current_request.set(request)
        try:
            start_key = request.session.session_key if hasattr(request, "session") else None
            response = (
                self._check_session(request)
                or self._mfa_gate(request)
                or self._queue_gate(request)
                or self.get_response(request)
            )
            self._follow_key_change(request, start_key)
            return response
        finally:
            current_request.reset(token)

    def _check_session(self, request: HttpRequest) -> HttpResponse | None:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return None
        session = request.session
        now = timezone.now().timestamp()
        row = selectors.user_session_for_key(session_key=session.session_key) if session.session_key else None
        auth_at = float(session.get(AUTH_AT_SESSION_KEY, now))
        seen_at = float(session.get(SEEN_AT_SESSION_KEY, now))
        reason: str | None = None
        if row is None or row.ended_at is not None or row.user_id != user.pk:
            reason = "revoked"
        elif now - auth_at > settings.ACCOUNTS_SESSION_ABSOLUTE_TIMEOUT.total_seconds():
            reason = UserSession.EndReason.ABSOLUTE
        elif now - seen_at > settings.ACCOUNTS_SESSION_IDLE_TIMEOUT.total_seconds():
            reason = UserSession.EndReason.IDLE
        if reason is None:
            assert row is not None
            if now - seen_at >= SEEN_UPDATE_EVERY:
                session[SEEN_AT_SESSION_KEY] = now
                UserSession.objects.filter(pk=row.pk).update(last_seen_at=timezone.now())
            session.setdefault(AUTH_AT_SESSION_KEY, auth_at)
            session.setdefault(SEEN_AT_SESSION_KEY, now)
            return None
        request._gc_end_reason = reason  # type: ignore[attr-defined]
        logout(request)
        text = {
            "revoked": "Your session was ended. Sign in again.",
            UserSession.EndReason.ABSOLUTE: "Your session reached its maximum length of "
            f"{int(settings.ACCOUNTS_SESSION_ABSOLUTE_TIMEOUT.total_seconds() // 3600)} hours. Sign in again.",
            UserSession.EndReason.IDLE: "Your session expired after "
            f"{int(settings.ACCOUNTS_SESSION_IDLE_TIMEOUT.total_seconds() // 60)} minutes without activity. "
            "Sign in again.",
        }[reason]
        messages.warning(request, text)
        if request.path.startswith(reverse("accounts:login")):
            return None
        return _redirect_with_next("accounts:login", request)

    def _mfa_gate(self, request: HttpRequest) -> HttpResponse | None:
        """No admin page (django-rq's included) for a session without a verified second factor."""
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated or user.is_verified():
            return None
        admin_root = reverse("admin:index")
        if not request.path.startswith(admin_root) or request.path == reverse("admin:logout"):
            return None
        return _redirect_with_next("accounts:mfa", request)

    def _queue_gate(self, request: HttpRequest) -> HttpResponse | None:
        """django-rq's pages only ask for staff: its POSTs (delete, requeue, empty a queue) are for super admins,
        as the Roles table says; support and billing may look."""
        if request.method in {"GET", "HEAD", "OPTIONS"} or not request.path.startswith(reverse("django_rq:home")):
            return None
        user = getattr(request, "user", None)
        if user is not None and user.is_active and user.is_superuser:
            return None
        return HttpResponseForbidden("Only super admins change the job queues; your role may view them.")

    def process_view(
        self, request: HttpRequest, view_func: Any, view_args: Any, view_kwargs: Any
    ) -> HttpResponse | None:
        match = request.resolver_match
        if match is None or match.view_name not in REAUTH_VIEW_NAMES:
            return None
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated or reauth_is_recent(request=request):
            return None
        if not user.is_verified():
            return None  # the second factor comes first: the MFA gate or the view sends it there
        if request.method == "GET":
            return _redirect_with_next("accounts:reauth", request)
        # A form posted without a recent confirmation: confirm, then come back to the page it came from.
        back = reverse("accounts:security") if match.view_name.startswith("accounts:") else request.path
        return HttpResponseRedirect(f"{reverse('accounts:reauth')}?{urlencode({'next': back})}")

    def _follow_key_change(self, request: HttpRequest, start_key: str | None) -> None:
        """Keep the session row when a view cycled the key of a live session (e.g. own password change)."""
        if not start_key or not hasattr(request, "session"):
            return
        new_key = request.session.session_key
        if not new_key or new_key == start_key:
            return
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return
        new_hash = selectors.token_hash(new_key)
        if UserSession.objects.filter(session_key_hash=new_hash).exists():
            return
        UserSession.objects.filter(session_key_hash=selectors.token_hash(start_key), ended_at__isnull=True).update(
            session_key_hash=new_hash
        )
