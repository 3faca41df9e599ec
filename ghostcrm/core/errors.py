"""One error family for the whole control plane.

Services raise ``ApplicationError`` subclasses with a stable ``code`` and a sentence a user can act on.
The API maps them to JSON with ``http_status`` (``ghostcrm.core.api``), management commands to
``CommandError`` (``ghostcrm.core.management``), the admin to a message.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models


class ApplicationError(Exception):
    code = "error"
    http_status = 400

    def __init__(self, message: str, *, code: str | None = None, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.extra = extra or {}

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.extra}


class ValidationError(ApplicationError):
    """Input that can never succeed as given. ``extra={"fields": {...}}`` carries per-field messages."""

    code = "invalid"
    http_status = 400


class NotFound(ApplicationError):
    code = "not_found"
    http_status = 404


class Conflict(ApplicationError):
    """The request is valid but the current state forbids it (e.g. a disallowed transition)."""

    code = "conflict"
    http_status = 409


class PermissionDenied(ApplicationError):
    code = "permission_denied"
    http_status = 403


class PayloadTooLarge(ApplicationError):
    code = "body_too_large"
    http_status = 413


class TransientError(ApplicationError):
    """A fault that may pass by itself (lost connection, database restart): worth retrying."""

    code = "transient"
    http_status = 503  # the API adds Retry-After when ``extra`` carries ``retry_after`` (seconds)


def validation_error_from(exc: DjangoValidationError, *, obj: models.Model) -> ValidationError:
    """Django's ``full_clean`` errors as our ValidationError, reporting every field's errors at once.

    Fields come in the model's field order (the order of the admin form and the API), errors that belong to
    no field last, so admin, API and command line list the same errors in the same order.
    ``extra["fields"]`` maps each field name (``__all__`` for the others) to its messages.
    """
    raw: dict[str, list[str]] = exc.message_dict if hasattr(exc, "error_dict") else {NON_FIELD_ERRORS: exc.messages}
    order = [field.name for field in obj._meta.fields]
    rank = {name: position for position, name in enumerate(order)}
    names = sorted(raw, key=lambda name: (name == NON_FIELD_ERRORS, rank.get(name, len(order)), name))
    fields = {name: list(raw[name]) for name in names}
    detail = "; ".join(
        " ".join(messages) if name == NON_FIELD_ERRORS else f"{name}: {' '.join(messages)}"
        for name, messages in fields.items()
    )
    return ValidationError(f"The {obj._meta.verbose_name} is not valid. {detail}", extra={"fields": fields})


def full_clean_or_raise(obj: models.Model, **kwargs: Any) -> None:
    """``obj.full_clean(**kwargs)``, raising :func:`validation_error_from` instead of Django's error."""
    try:
        obj.full_clean(**kwargs)
    except DjangoValidationError as exc:
        raise validation_error_from(exc, obj=obj) from None
