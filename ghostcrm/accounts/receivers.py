"""Signal receivers: sign-in events to the audit log, sessions, and disabling an account."""

from __future__ import annotations

from typing import Any

from axes.signals import user_locked_out
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import post_save, pre_save
from django.dispatch import receiver
from django.http import HttpRequest

from ghostcrm.accounts import lockout
from ghostcrm.accounts.context import get_current_request
from ghostcrm.accounts.models import User, UserSession
from ghostcrm.accounts.selectors import user_session_for_key
from ghostcrm.accounts.services.sessions import user_session_end, user_session_start, user_sessions_revoke
from ghostcrm.audit.models import AuditEvent
from ghostcrm.audit.services import Actor, audit_record


def _claimed_actor(username: str | None) -> tuple[Actor, User | None]:
    """The person a failed attempt claims to be: the account when it exists, else just the name typed."""
    name = (username or "").strip().lower()
    user = User.objects.filter(email__iexact=name).first() if name else None
    return Actor(AuditEvent.ActorType.USER, str(user.pk) if user else "", name[:255]), user


@receiver(user_login_failed, dispatch_uid="accounts_audit_login_failed")
def audit_login_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    username = credentials.get("username")
    factor = str(credentials.get("factor") or "password")
    actor, user = _claimed_actor(username)
    locked = bool(getattr(request, "axes_locked_out", False))
    audit_record(
        action="auth.login.failure",
        actor=actor,
        target=user,
        target_type="" if user else "accounts.user",
        target_repr="" if user else (username or "")[:255],
        request=request,
        outcome=AuditEvent.Outcome.DENIED if locked else AuditEvent.Outcome.FAILURE,
        after={"factor": factor},
        message=f"Failed {factor} step" + (" (account locked for this address)." if locked else "."),
    )


@receiver(user_locked_out, dispatch_uid="accounts_audit_lockout")
def audit_lockout(
    sender: Any, request: HttpRequest, username: str | None, ip_address: str | None, **kwargs: Any
) -> None:
    # axes also sends this signal for every attempt refused during a lock; only a new lock has a failure count.
    failures = getattr(request, "axes_failures_since_start", None)
    if not isinstance(failures, int):
        return
    until = lockout.handler().locked_until(request, getattr(request, "axes_credentials", None))
    actor, user = _claimed_actor(username)
    audit_record(
        action="auth.lockout",
        actor=actor,
        target=user,
        target_type="" if user else "accounts.user",
        target_repr="" if user else (username or "")[:255],
        request=request,
        outcome=AuditEvent.Outcome.DENIED,
        after={"failures": failures, "locked_until": until.isoformat() if until else None, "ip_address": ip_address},
        message=f"Locked after {failures} failed attempts" + (f" until {until:%Y-%m-%d %H:%M} UTC." if until else "."),
    )


@receiver(user_logged_in, dispatch_uid="accounts_session_start")
def session_start(sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
    if isinstance(user, User) and hasattr(request, "session"):
        user_session_start(request=request, user=user)


@receiver(user_logged_out, dispatch_uid="accounts_session_logout")
def session_logout(sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
    if not isinstance(user, User) or not hasattr(request, "session") or not request.session.session_key:
        return
    session = user_session_for_key(session_key=request.session.session_key)
    if session is not None and session.ended_at is None:
        reason = getattr(request, "_gc_end_reason", UserSession.EndReason.LOGOUT)
        user_session_end(session=session, reason=reason, actor=Actor.for_user(user), request=request)


@receiver(pre_save, sender=User, dispatch_uid="accounts_user_pre_save")
def remember_previous_state(sender: Any, instance: User, **kwargs: Any) -> None:
    instance._gc_was_active = (  # type: ignore[attr-defined]
        not instance._state.adding
        and not instance.is_active
        and User.objects.filter(pk=instance.pk, is_active=True).exists()
    )


@receiver(post_save, sender=User, dispatch_uid="accounts_user_disabled")
def end_sessions_of_disabled_user(sender: Any, instance: User, created: bool, **kwargs: Any) -> None:
    if created or not getattr(instance, "_gc_was_active", False):
        return
    instance._gc_was_active = False  # type: ignore[attr-defined]
    request = get_current_request()
    user_sessions_revoke(
        user=instance,
        actor=Actor.for_user(getattr(request, "user", None)) if request is not None else Actor.system(),
        reason=UserSession.EndReason.DISABLED,
        request=request,
    )
