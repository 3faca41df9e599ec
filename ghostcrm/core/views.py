"""The few pages outside the admin and the API: the root address and the site icon."""

from __future__ import annotations

from pathlib import Path

from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_safe

FAVICON = Path(__file__).resolve().parent / "static" / "ghostcrm" / "favicon.ico"


@require_safe
def root_view(request: HttpRequest) -> HttpResponse:
    """There is no public site: the root address leads to the admin (its sign-in page when signed out)."""
    return HttpResponseRedirect(reverse("admin:index"))


@require_safe
@cache_control(public=True, max_age=86400)
def favicon_view(request: HttpRequest) -> FileResponse:
    """Browsers ask every page for /favicon.ico; answering it keeps a 404 out of every page load and log."""
    return FileResponse(FAVICON.open("rb"), content_type="image/x-icon")
