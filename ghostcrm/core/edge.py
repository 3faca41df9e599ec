"""What happens at the edge of every request, before and after the views: refusals that must never be a 500.

- ``EdgeMiddleware`` (first in ``MIDDLEWARE``): a NUL or other control character in the path is a 404 (it can name
  nothing, and PostgreSQL text cannot store it), a NUL in a header a 400, an API body larger than
  ``API_MAX_BODY_BYTES`` a 413, each as the API's JSON error shape under ``/api/``.
- A database that refuses connections (``too many clients``, connection refused, restarting) is a 503 with
  ``Retry-After`` naming the database, for the API (``database_unavailable_error``, used by the API's exception
  handler) and for every other page (the 500 Django would answer is replaced by this middleware).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable
from types import TracebackType
from typing import Any

from django.conf import settings
from django.core.signals import got_request_exception
from django.db import InterfaceError, OperationalError
from django.db.backends.base.base import BaseDatabaseWrapper
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse, JsonResponse

from ghostcrm.core.errors import TransientError

logger = logging.getLogger(__name__)

API_PREFIX = "/api/"
DATABASE_RETRY_AFTER = 5  # seconds: a connection slot or a restarted server is usually back by then
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DATABASE_NAMES = {"default": "main database", "tenants": "tenant database"}
_EXCEPTION_ATTR = "_ghostcrm_unhandled_exception"


def has_control_characters(text: str) -> bool:
    return _CONTROL.search(text) is not None


def without_nul(text: str) -> str:
    """``text`` fit for a PostgreSQL text column (which cannot hold NUL)."""
    return text.replace("\x00", "")


def api_max_body_bytes() -> int:
    return int(getattr(settings, "API_MAX_BODY_BYTES", 1_048_576))


def _json_error(status: int, code: str, message: str, **extra: Any) -> JsonResponse:
    return JsonResponse({"code": code, "message": message, **extra}, status=status)


def _content_length(request: HttpRequest) -> int | None:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None


class EdgeMiddleware:
    """Refuse what can never succeed before any middleware or view touches the database."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        refused = self.refuse(request)
        if refused is not None:
            return refused
        response = self.get_response(request)
        exc = getattr(request, _EXCEPTION_ATTR, None)
        if response.status_code == 500 and exc is not None:
            error = database_unavailable_error(exc)
            if error is not None:
                return unavailable_response(request, error)
        return response

    def refuse(self, request: HttpRequest) -> HttpResponse | None:
        is_api = request.path.startswith(API_PREFIX)
        if has_control_characters(request.path):
            if is_api:
                return _json_error(404, "not_found", "There is no API endpoint at this address.")
            return HttpResponse("Not found.", status=404, content_type="text/plain; charset=utf-8")
        if any("\x00" in value for key, value in request.META.items() if key.startswith("HTTP_")):
            # Headers are copied into the audit log (user agent), and PostgreSQL text cannot hold NUL.
            if is_api:
                return _json_error(400, "invalid_header", "A request header contains a NUL character.")
            return HttpResponse("A request header contains a NUL character.", status=400,
                                content_type="text/plain; charset=utf-8")  # fmt: skip
        if not is_api:
            return None
        length = _content_length(request)
        if length is None:
            return _json_error(400, "invalid_content_length", "The Content-Length header is not a number.")
        limit = api_max_body_bytes()
        if length > limit:
            return _json_error(
                413,
                "body_too_large",
                f"The request body is {length} bytes; the API accepts at most {limit} bytes.",
                limit=limit,
            )
        return None


@receiver(got_request_exception)
def _remember_exception(sender: Any, request: HttpRequest | None = None, **kwargs: Any) -> None:
    """Django is about to answer 500: keep the exception so ``EdgeMiddleware`` can tell an outage from a bug."""
    if request is not None:
        setattr(request, _EXCEPTION_ATTR, sys.exc_info()[1])  # sent from inside Django's except block


def _database_alias(tb: TracebackType | None) -> str:
    """The alias of the connection the failing call was made on (the innermost database wrapper on the stack)."""
    alias = ""
    while tb is not None:
        candidate = tb.tb_frame.f_locals.get("self")
        # type(), not isinstance(): isinstance() would evaluate a lazy object (request.user) on the stack.
        if issubclass(type(candidate), BaseDatabaseWrapper):
            alias = str(getattr(candidate, "alias", ""))
        tb = tb.tb_next
    return alias


def _reason(exc: BaseException) -> str:
    text = str(exc).lower()
    if "too many clients" in text or "remaining connection slots" in text:
        return "has no free connection slot (too many clients)"
    if "refused" in text:
        return "refused the connection"
    if "starting up" in text or "shutting down" in text or "recovery" in text:
        return "is restarting"
    return "is not reachable"


def database_unavailable_error(exc: BaseException) -> TransientError | None:
    """A 503 for an exception that means "the database cannot be reached now", else None.

    Operational errors of a query on a working connection (a lock or statement timeout, a serialisation
    failure) are not this: they carry a SQLSTATE of their own and are left to their callers.
    """
    if not isinstance(exc, OperationalError | InterfaceError):
        return None
    cause = exc.__cause__
    if getattr(cause, "sqlstate", None) not in {None, "53300", "57P01", "57P02", "57P03", "08000", "08001", "08006"}:
        return None
    alias = _database_alias(exc.__traceback__)
    name = _DATABASE_NAMES.get(alias, f"database {alias!r}" if alias else "database")
    logger.warning("the %s is unavailable: %s", name, str(exc).strip().splitlines()[0] if str(exc).strip() else exc)
    return TransientError(
        f"The {name} {_reason(exc)}; try again in {DATABASE_RETRY_AFTER} seconds.",
        code="database_unavailable",
        extra={"database": alias or "unknown", "retry_after": DATABASE_RETRY_AFTER},
    )


def unavailable_response(request: HttpRequest, error: TransientError) -> HttpResponse:
    retry_after = str(error.extra.get("retry_after", DATABASE_RETRY_AFTER))
    response: HttpResponse
    if request.path.startswith(API_PREFIX):
        response = JsonResponse(error.as_dict(), status=error.http_status)
    else:
        response = HttpResponse(error.message, status=error.http_status, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = retry_after
    return response
