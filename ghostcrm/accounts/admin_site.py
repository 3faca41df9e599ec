"""The project's admin site: django-otp's OTPAdminSite, so only sessions verified by a second factor pass
``has_permission``. Signing in happens in the accounts views (password, then TOTP or enrolment)."""

from __future__ import annotations

from typing import Any, cast
from urllib.parse import urlencode

from django.contrib.auth import REDIRECT_FIELD_NAME
from django.contrib.auth.views import PasswordChangeView
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django_otp.admin import OTPAdminSite

from ghostcrm.accounts.forms import SitePasswordChangeForm


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

    def password_change(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> TemplateResponse:
        """Django's page with our form, so the change goes through ``password_change`` (history, sessions)."""
        defaults: dict[str, Any] = {
            "form_class": SitePasswordChangeForm,
            "success_url": reverse("admin:password_change_done", current_app=self.name),
            "extra_context": {**self.each_context(request), **(extra_context or {})},
        }
        if self.password_change_template is not None:
            defaults["template_name"] = self.password_change_template
        request.current_app = self.name
        # The view answers a TemplateResponse (the form) or a redirect after the change, as Django's own does.
        return cast(TemplateResponse, PasswordChangeView.as_view(**defaults)(request))
