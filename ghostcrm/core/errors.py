"""One error family for the whole control plane.

Services raise ``ApplicationError`` subclasses with a stable ``code`` and a sentence a user can act on.
The API maps them to JSON with ``http_status`` (``ghostcrm.core.api``), management commands to
``CommandError`` (``ghostcrm.core.management``), the admin to a message.
"""

from __future__ import annotations

from typing import Any


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
