from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse

from operations import logs
from operations.services import metrics

logger = logging.getLogger("ghostcrm.request")


def _view_label(request: HttpRequest) -> str:
    match = request.resolver_match
    if match is None:
        return "<unresolved>"
    return match.view_name or match._func_path


class RequestMetricsMiddleware:
    """Request count and latency by view (Prometheus), the log context, and one log line per request."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        with logs.bound(request_id=getattr(request, "request_id", "")):
            response = self.get_response(request)
            elapsed = time.perf_counter() - started
            view = _view_label(request)
            metrics.observe_request(
                view=view, method=request.method or "", status=response.status_code, seconds=elapsed
            )
            if view != "operations:metrics":  # scrapes every few seconds would drown the log
                logger.info(
                    "%s %s %s %.1fms",
                    request.method,
                    request.path,
                    response.status_code,
                    elapsed * 1000,
                )
        return response

    def process_view(self, request: HttpRequest, view_func: Any, view_args: Any, view_kwargs: dict[str, Any]) -> None:
        user = getattr(request, "user", None)
        organization = view_kwargs.get("slug") or view_kwargs.get("organization_id") or ""
        logs.bind(
            user=user.get_username() if user is not None and user.is_authenticated else "",
            organization=str(organization),
        )
