"""Password validators that Django lacks: a maximum length and "not one of your last N passwords"."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.hashers import check_password
from django.core.exceptions import ValidationError

from ghostcrm.accounts.selectors import password_recent_hashes


class MaximumLengthValidator:
    """Refuse passwords longer than ``max_length`` characters (hashing unbounded input is a DoS vector)."""

    def __init__(self, max_length: int = 128) -> None:
        self.max_length = max_length

    def validate(self, password: str, user: Any = None) -> None:
        if len(password) > self.max_length:
            raise ValidationError(
                f"This password is too long: it may have at most {self.max_length} characters.",
                code="password_too_long",
                params={"max_length": self.max_length},
            )

    def get_help_text(self) -> str:
        return f"Your password may have at most {self.max_length} characters."


class PasswordHistoryValidator:
    """Refuse the user's current password and the ones before it, ``history`` passwords in all.

    Only checks: the history is written by ``services.passwords.password_change`` (the one way a password
    changes), never by a ``password_changed`` hook, which Django would run on every save of a user.
    """

    def __init__(self, history: int = 5) -> None:
        self.history = history

    def validate(self, password: str, user: Any = None) -> None:
        if user is None or getattr(user, "pk", None) is None:
            return
        for encoded in password_recent_hashes(user=user, limit=self.history):
            if check_password(password, encoded):
                raise ValidationError(
                    f"You used this password recently; choose one that differs from your last {self.history}.",
                    code="password_reused",
                    params={"history": self.history},
                )

    def get_help_text(self) -> str:
        return f"Your password cannot be one of your last {self.history} passwords."
