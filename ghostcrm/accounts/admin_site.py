"""The project's admin site: django-otp's OTPAdminSite, so only sessions verified by a second factor pass
``has_permission``. Signing in happens in the accounts views (password, then TOTP or enrolment)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib.auth import REDIRECT_FIELD_NAME
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django_otp.admin import OTPAdminSite


class GhostAdminSite(OTPAdminSite):
    site_header = "GhostCRM control plane"
    site_title = "GhostCRM"
    index_title = "Control plane"

    def __init__(self, name: str = "admin") -> None:
        super().__init__(name)

    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        next_url = request.GET.get(REDIRECT_FIELD_NAME, "")
        if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
            next_url = ""
        next_url = next_url or reverse("admin:index", current_app=self.name)
        user = request.user
        step = "accounts:mfa" if user.is_authenticated and not user.is_verified() else "accounts:login"  # type: ignore[union-attr,attr-defined]
        return HttpResponseRedirect(f"{reverse(step)}?{urlencode({REDIRECT_FIELD_NAME: next_url})}")
