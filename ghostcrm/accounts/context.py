"""The request being served, for code that runs deep below a view (password hooks, model signals).

Set by ``SessionSecurityMiddleware``; None in commands and jobs. Used only to attach IP address and user
agent to audit events and to know the current session; never for access decisions.
"""

from __future__ import annotations

from contextvars import ContextVar

from django.http import HttpRequest

current_request: ContextVar[HttpRequest | None] = ContextVar("ghostcrm_current_request", default=None)


def get_current_request() -> HttpRequest | None:
    return current_request.get()
