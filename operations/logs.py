"""Log context and the JSON formatter (``LOG_FORMAT=json``).

Every record carries ``request_id``, ``job_id``, ``organization`` and ``user`` when known: the web
middleware sets them per request (``bind``), an RQ job's id is read from RQ itself. With ``LOG_FORMAT=json``
each record is one JSON object per line, ready for a log shipper.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rq import get_current_job

_CONTEXT: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("ghostcrm_log_context", default=None)
FIELDS = ("request_id", "job_id", "organization", "user")


@contextmanager
def bound(**values: str) -> Iterator[None]:
    """Add ``values`` to the log context of everything logged inside the block."""
    token = _CONTEXT.set({**(_CONTEXT.get() or {}), **{k: v for k, v in values.items() if v}})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def bind(**values: str) -> None:
    """Add ``values`` to the current context (a request handler learns the user after authentication)."""
    _CONTEXT.set({**(_CONTEXT.get() or {}), **{k: v for k, v in values.items() if v}})


def current() -> dict[str, str]:
    context = dict(_CONTEXT.get() or {})
    if "job_id" not in context:
        job = get_current_job()
        if job is not None:
            context["job_id"] = job.id
    return context


class ContextFilter(logging.Filter):
    """Copies the log context onto each record (empty strings where unknown), for both formats."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = current()
        for name in FIELDS:
            if not hasattr(record, name):
                setattr(record, name, context.get(name, ""))
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, tz=dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, "")
            if value:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)
