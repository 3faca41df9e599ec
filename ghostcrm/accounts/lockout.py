"""Progressive lockout on top of django-axes.

Axes counts failed sign-ins per (username, IP address) and forgets them ``AXES_COOLOFF_TIME`` (24 h) after
the last failure or at a successful sign-in. This handler turns the count into a lock of growing length:
``AXES_FAILURE_LIMIT`` (5) failures lock for ``ACCOUNTS_LOCKOUT_BASE`` (15 min) from the last failure and
each further failure doubles it, up to ``ACCOUNTS_LOCKOUT_MAX`` (24 h). Attempts made while locked are
refused without being counted (``AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False``), so a user who
waits out the lock gets one more try before the next, longer, lock.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from axes.handlers.database import AxesDatabaseHandler
from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_failure_limit
from django.conf import settings
from django.contrib import admin
from django.db.models import Max, Sum
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone


def cooloff_for(failures: int) -> dt.timedelta:
    """How long ``failures`` failed attempts lock the (username, address) pair, counted from the last one."""
    limit = settings.AXES_FAILURE_LIMIT
    if failures < limit:
        return dt.timedelta(0)
    base: dt.timedelta = settings.ACCOUNTS_LOCKOUT_BASE
    ceiling: dt.timedelta = settings.ACCOUNTS_LOCKOUT_MAX
    # Cap the exponent before multiplying: 2**failures overflows timedelta long before it matters.
    steps = min(failures - limit, 32)
    return min(base * (2**steps), ceiling)


def normalised_username(request: HttpRequest | None, credentials: dict[str, Any] | None = None) -> str | None:
    """The login name axes counts under: e-mail addresses are case-insensitive, so are our lock keys."""
    value: Any = None
    if credentials:
        value = credentials.get(settings.AXES_USERNAME_FORM_FIELD)
    elif request is not None:
        value = getattr(request, "POST", {}).get(settings.AXES_USERNAME_FORM_FIELD)
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip().lower()


class ProgressiveAxesHandler(AxesDatabaseHandler):
    def locked_until(self, request: HttpRequest, credentials: dict[str, Any] | None = None) -> dt.datetime | None:
        """When the lock on this request's (username, address) ends; None when it is not locked."""
        now = timezone.now()
        until: dt.datetime | None = None
        for attempts in self.get_user_attempts(request, credentials):
            summary = attempts.aggregate(failures=Sum("failures_since_start"), last=Max("attempt_time"))
            failures, last = summary["failures"] or 0, summary["last"]
            if last is None or failures < get_failure_limit(request, credentials):
                continue
            candidate = last + cooloff_for(failures)
            if candidate > now and (until is None or candidate > until):
                until = candidate
        return until

    def is_locked(self, request: HttpRequest, credentials: dict[str, Any] | None = None) -> bool:
        if not getattr(settings, "AXES_LOCK_OUT_AT_FAILURE", True):
            return False
        return self.locked_until(request, credentials) is not None


def handler() -> ProgressiveAxesHandler:
    implementation = AxesProxyHandler.get_implementation()
    assert isinstance(implementation, ProgressiveAxesHandler), "AXES_HANDLER must be the progressive handler"
    return implementation


def prepare_request(request: HttpRequest) -> None:
    """Give ``request`` the attributes axes computes (IP, user agent, time) when axes has not yet done so."""
    AxesProxyHandler.update_request(request)


def lockout_message(until: dt.datetime | None) -> tuple[str, int]:
    """A sentence saying when to try again, and the wait in seconds."""
    if until is None:
        return "Too many failed sign-in attempts. Try again later.", 0
    seconds = max(1, math.ceil((until - timezone.now()).total_seconds()))
    minutes = math.ceil(seconds / 60)
    when = until.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    span = f"{minutes} minute{'s' if minutes != 1 else ''}" if minutes < 120 else f"{math.ceil(minutes / 60)} hours"
    return (
        f"Too many failed sign-in attempts for this account from your address. Try again after {when} "
        f"(in about {span}), or ask a super admin to unlock the account.",
        seconds,
    )


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: dict[str, Any] | None = None
) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE: 429 with the time the lock ends, as JSON for the API and HTML elsewhere."""
    prepare_request(request)
    until = handler().locked_until(request, credentials)
    message, seconds = lockout_message(until)
    wants_json = request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", "")
    response: HttpResponse
    if wants_json:
        response = JsonResponse(
            {
                "code": "locked_out",
                "message": message,
                "retry_after": seconds,
                "locked_until": until.isoformat() if until else None,
            },
            status=429,
        )
    else:
        context = {**admin.site.each_context(request), "title": "Sign-in locked", "message": message}
        context.update({"locked_until": until, "retry_after": seconds})
        response = render(request, "registration/lockout.html", context, status=429)
    if seconds:
        response["Retry-After"] = str(seconds)
    return response
