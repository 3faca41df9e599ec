from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html_join

from ghostcrm.audit.services import Actor
from ghostcrm.core.admin_base import AuditedModelAdmin, adopt_saved
from ghostcrm.integrations.models import IntegrationPreference
from ghostcrm.integrations.providers import PROVIDER_SPECS
from ghostcrm.integrations.services import integration_preference_set, merge_secrets


class WriteOnlyTextarea(forms.Textarea):
    """Never renders a value: stored secrets are not shown, and submitted ones are not echoed back."""

    def format_value(self, value: Any) -> None:
        return None


SECRETS_HELP = [
    'A JSON object, e.g. {"bot_token": "xoxb-…"}: the names given are set, null removes one, the others stay. '
    "Leave empty to keep the stored secrets. Expected per provider:",
    *(spec.describe() for spec in PROVIDER_SPECS),
]


class IntegrationPreferenceForm(forms.ModelForm):
    secrets = forms.JSONField(
        required=False,
        label="Set secrets",
        widget=WriteOnlyTextarea(attrs={"rows": 4, "autocomplete": "off", "spellcheck": "false"}),
        help_text=format_html_join("", "{}<br>", [(line,) for line in SECRETS_HELP]),
    )

    class Meta:
        model = IntegrationPreference
        fields = ("organization", "provider", "enabled", "settings", "secrets")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.initial.pop("secrets", None)  # the stored secrets are never a form's initial value

    def clean_settings(self) -> Any:
        value = self.cleaned_data.get("settings")
        return {} if value is None else value

    def clean_secrets(self) -> dict[str, str]:
        updates = self.cleaned_data.get("secrets")
        stored = self.instance.secrets if isinstance(self.instance.secrets, dict) else {}
        self.secret_updates: dict[str, str | None] = {}
        if updates in (None, {}):
            return dict(stored)
        if not isinstance(updates, dict) or not all(
            isinstance(value, str) or value is None for value in updates.values()
        ):
            raise forms.ValidationError(
                'Enter a JSON object of secret names to text values, e.g. {"bot_token": "xoxb-…"}; '
                "null removes a secret."
            )
        self.secret_updates = updates
        return merge_secrets(stored, updates)


@admin.register(IntegrationPreference)
class IntegrationPreferenceAdmin(AuditedModelAdmin):
    form = IntegrationPreferenceForm
    service_audited = True  # integration.preference_set (secret names only), with the admin user as actor
    list_display = ("organization", "provider", "enabled", "secret_names_display", "updated_at")
    list_filter = ("provider", "enabled")
    search_fields = ("organization__name", "organization__slug", "provider")
    list_select_related = ("organization",)
    autocomplete_fields = ("organization",)
    readonly_fields = ("secret_names_display", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("organization", "provider", "enabled", "settings")}),
        ("Secrets (encrypted, write-only)", {"fields": ("secret_names_display", "secrets")}),
        ("Dates", {"fields": ("created_at", "updated_at")}),
    )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # A preference is one organisation's choice for one provider: a change never moves it to another.
        return (*self.readonly_fields, "organization", "provider") if obj is not None else self.readonly_fields

    def save_model(self, request: HttpRequest, obj: IntegrationPreference, form: Any, change: bool) -> None:
        saved = integration_preference_set(
            organization_id=obj.organization_id,
            provider=obj.provider,
            actor=Actor.for_user(request.user),
            enabled=obj.enabled,
            settings=obj.settings,
            secrets=getattr(form, "secret_updates", None) or None,
            request=request,
        )
        adopt_saved(obj, saved)

    @admin.display(description="secrets set")
    def secret_names_display(self, obj: IntegrationPreference) -> str:
        return ", ".join(obj.secret_names) or "none"

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        if obj is not None and not self.has_change_permission(request, obj):
            # View-only pages show every form field read-only; the secrets field would display the values.
            return [
                (name, {**options, "fields": tuple(f for f in options["fields"] if f != "secrets")})
                for name, options in fieldsets
            ]
        return fieldsets
