"""Passwords: validation against the configured rules, and the one way to change a password.

Password history is written here, by the service that changes the password, not by a validator's
``password_changed`` hook: Django calls that hook from ``User.save()``, so a validator that writes (or ends
sessions) turns every save of a user into a side effect nobody asked for.
"""

from __future__ import annotations

from django.contrib.auth import password_validation as pv
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.http import HttpRequest

from ghostcrm.accounts.models import PasswordHistory, User, UserSession
from ghostcrm.accounts.services.sessions import user_sessions_revoke
from ghostcrm.accounts.validators import PasswordHistoryValidator
from ghostcrm.audit.services import Actor, audit_record
from ghostcrm.core.errors import ValidationError

DEFAULT_HISTORY = 5


def password_errors(*, password: str, user: User) -> list[str]:
    """Every message of Django's validators (length 12-128, common list, similarity, history); [] when fine."""
    try:
        pv.validate_password(password, user=user)
    except DjangoValidationError as exc:
        return list(exc.messages)
    return []


def password_validate(*, password: str, user: User) -> None:
    """Raise ValidationError (all messages, under the ``password`` field) unless the password passes."""
    errors = password_errors(password=password, user=user)
    if errors:
        raise ValidationError(" ".join(errors), extra={"fields": {"password": errors}})


def password_history_length() -> int:
    """How many passwords the history validator refuses (its ``history`` option); the history kept."""
    for validator in pv.get_default_password_validators():
        if isinstance(validator, PasswordHistoryValidator):
            return validator.history
    return DEFAULT_HISTORY


def password_change(
    *,
    user: User,
    password: str,
    actor: Actor,
    request: HttpRequest | None = None,
    except_session_key: str | None = None,
    validate: bool = True,
) -> int:
    """Set ``user``'s password: validated, remembered in the history, audited; returns the sessions ended.

    Every other session of the account ends (``except_session_key``: the session that made the change,
    when it is the user's own). The hash the account had before is remembered too when the history is
    still empty (an account created with a password), so the first password cannot come straight back.
    """
    if validate:
        password_validate(password=password, user=user)
    keep = password_history_length()
    with transaction.atomic():
        locked = User.objects.select_for_update().get(pk=user.pk)
        history = PasswordHistory.objects.filter(user=locked)
        if not history.exists() and locked.password and locked.has_usable_password():
            PasswordHistory.objects.create(user=locked, password_hash=locked.password)
        user.set_password(password)
        user.save(update_fields=["password", "updated_at"])
        PasswordHistory.objects.create(user=user, password_hash=user.password)
        stale = list(history.order_by("-created_at", "-id").values_list("pk", flat=True)[keep:])
        if stale:
            PasswordHistory.objects.filter(pk__in=stale).delete()
        ended = user_sessions_revoke(
            user=user,
            actor=actor,
            reason=UserSession.EndReason.PASSWORD,
            request=request,
            except_session_key=except_session_key,
            audit=False,
        )
        audit_record(
            action="auth.password.change",
            actor=actor,
            target=user,
            request=request,
            message=f"Password changed; {ended} other session(s) ended.",
        )
    return ended
