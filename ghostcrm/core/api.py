"""The REST API's error shape: every error is JSON ``{"code": ..., "message": ..., ...}``, never a 500 for an
outage (database or Redis unreachable: 503 with ``Retry-After``) or for hostile input (nested or oversized bodies)."""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import RequestDataTooBig
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rest_framework import exceptions, status
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from ghostcrm.core.edge import api_max_body_bytes, database_unavailable_error
from ghostcrm.core.errors import ApplicationError, PayloadTooLarge, TransientError

# Deeper than any body the API takes (its bodies are flat objects); far below Python's recursion limit.
MAX_JSON_DEPTH = 32
QUEUE_RETRY_AFTER = 30  # seconds: Redis restarts, or fails over, in about that


def queue_unavailable_error(message: str = "", **extra: Any) -> TransientError:
    return TransientError(
        message or f"The job queue (Redis) is unreachable; try again in {QUEUE_RETRY_AFTER} seconds.",
        code="queue_unavailable",
        extra={"retry_after": QUEUE_RETRY_AFTER, **extra},
    )


def json_depth(value: Any) -> int:
    """How deeply ``value`` nests lists and objects (a scalar is 0), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth + 1)
        stack.extend((child, depth + 1) for child in children)
    return deepest


class TooDeep(exceptions.ParseError):
    default_detail = f"JSON parse error - the body nests deeper than {MAX_JSON_DEPTH} levels."
    default_code = "parse_error"


class BoundedJSONParser(JSONParser):
    """JSON with a depth limit: a 5,000-level body is a 400, not a ``RecursionError`` (a 500)."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise TooDeep from None
        if json_depth(data) > MAX_JSON_DEPTH:
            raise TooDeep
        return data


def _as_application_error(exc: Exception) -> ApplicationError | None:
    """Exceptions from below the API (Django, the database, Redis) that have a clear answer."""
    if isinstance(exc, ApplicationError):
        return exc
    if isinstance(exc, RequestDataTooBig):
        limit = api_max_body_bytes()
        return PayloadTooLarge(f"The request body is too large; the API accepts at most {limit} bytes.",
                               extra={"limit": limit})  # fmt: skip
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        return queue_unavailable_error()
    if isinstance(exc, json.JSONDecodeError | RecursionError):
        return ApplicationError("The request body is not valid JSON.", code="parse_error")
    return database_unavailable_error(exc)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    error = _as_application_error(exc)
    if error is not None:
        response = Response(error.as_dict(), status=error.http_status)
        if "retry_after" in error.extra:
            response["Retry-After"] = str(error.extra["retry_after"])
        return response
    handled = drf_exception_handler(exc, context)
    if handled is None:
        return None
    response = handled
    if isinstance(exc, exceptions.ValidationError):
        fields = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        response.data = {"code": "invalid", "message": "The request has invalid fields.", "fields": fields}
    elif isinstance(exc, exceptions.APIException):
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        response.data = {"code": exc.get_codes() if isinstance(exc.get_codes(), str) else "error", "message": detail}
        if response.status_code == status.HTTP_429_TOO_MANY_REQUESTS and getattr(exc, "wait", None):
            response.data["retry_after"] = int(exc.wait)  # type: ignore[attr-defined]
    return response
