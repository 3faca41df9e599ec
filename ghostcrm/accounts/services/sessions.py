"""Logged-in sessions: start, end, revoke and purge the rows a super admin sees and ends."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone

from ghostcrm.accounts import selectors
from ghostcrm.accounts.models import User, UserSession
from ghostcrm.audit.services import Actor, audit_record
from ghostcrm.core.http import client_ip

# Session keys (values are POSIX timestamps so any session serializer stores them).
AUTH_AT_SESSION_KEY = "_gc_auth_at"
SEEN_AT_SESSION_KEY = "_gc_seen_at"


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
