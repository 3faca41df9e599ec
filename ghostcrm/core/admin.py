from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.http import urlencode

from ghostcrm.audit.services import Actor
from ghostcrm.core.admin_base import AuditedModelAdmin, adopt_saved
from ghostcrm.core.models import SystemSetting
from ghostcrm.core.services import system_setting_reset, system_setting_set
from ghostcrm.core.system_settings import REGISTRY, SettingSpec


@dataclass(frozen=True)
class DeclaredSettingRow:
    """One declared setting as the System settings list shows it: its current value and where it comes from."""

    key: str
    type_name: str
    constraints: str
    value: str
    stored: bool
    problem: str  # why a stored value no longer parses (the declaration changed); "" when it does
    default: str
    description: str
    action_label: str
    action_url: str


def _constraints(spec: SettingSpec) -> str:
    parts = []
    if spec.min_value is not None:
        parts.append(f"at least {spec.min_value}")
    if spec.max_value is not None:
        parts.append(f"at most {spec.max_value}")
    if spec.choices:
        parts.append("one of " + ", ".join(spec.choices))
    return "; ".join(parts)


class SystemSettingForm(forms.ModelForm):
    key = forms.ChoiceField(choices=())

    class Meta:
        model = SystemSetting
        fields = ("key", "value")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "key" in self.fields:  # the add page; the key is read-only once stored
            self.fields["key"].choices = [  # type: ignore[attr-defined]
                ("", "---------"),
                *((key, f"{key} ({spec.type_name})") for key, spec in sorted(REGISTRY.items())),
            ]
            self.fields["value"].help_text = "Typed text, checked against the chosen setting: " + "; ".join(
                f"{key}: {spec.type_name}, default {spec.serialize(spec.default)}"
                for key, spec in sorted(REGISTRY.items())
            )
        key = self.initial.get("key") or (self.instance.key if self.instance.pk else "")
        if key in REGISTRY:
            spec = REGISTRY[key]
            self.fields[
                "value"
            ].help_text = f"{spec.help_text} Expects {spec.type_name}; default {spec.serialize(spec.default)}."

    def add_error(self, field: str | None, error: Any) -> None:
        # The model names `key` in its errors; on the change page the key is read-only, not a form field.
        if (
            field is None
            and isinstance(error, ValidationError)
            and hasattr(error, "error_dict")
            and "key" in error.error_dict
            and "key" not in self.fields
        ):
            error = ValidationError(
                {NON_FIELD_ERRORS if name == "key" else name: errors for name, errors in error.error_dict.items()}
            )
        super().add_error(field, error)


@admin.register(SystemSetting)
class SystemSettingAdmin(AuditedModelAdmin):
    form = SystemSettingForm
    service_audited = True  # system_setting.set / system_setting.reset, with the admin user as actor
    list_display = ("key", "value", "default", "description", "updated_at", "updated_by")
    search_fields = ("key",)
    list_select_related = ("updated_by",)
    readonly_fields = ("updated_at", "updated_by")

    @admin.display(description="default")
    def default(self, obj: SystemSetting) -> str:
        spec = REGISTRY.get(obj.key)
        return "" if spec is None else spec.serialize(spec.default)

    @admin.display(description="description")
    def description(self, obj: SystemSetting) -> str:
        spec = REGISTRY.get(obj.key)
        return "" if spec is None else spec.help_text

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return (*self.readonly_fields, "key") if obj is not None else self.readonly_fields

    def declared_rows(self, request: HttpRequest, search: str = "") -> list[DeclaredSettingRow]:
        """Every declared setting (overridden or not), with a link to override or change it; one query."""
        stored = {key: (pk, value) for pk, key, value in SystemSetting.objects.values_list("pk", "key", "value")}
        can_add = self.has_add_permission(request)
        can_change = self.has_change_permission(request)
        needle = search.strip().lower()
        rows = []
        for key, spec in sorted(REGISTRY.items()):
            if needle and needle not in key.lower():
                continue
            default = spec.serialize(spec.default)
            problem, action_label, action_url = "", "", ""
            if key in stored:
                pk, value = stored[key]
                try:
                    spec.parse(value)
                except ValidationError as exc:
                    problem = " ".join(exc.messages)
                action_label = "Change" if can_change else "View"  # a read-only role sees the stored row
                action_url = reverse("admin:core_systemsetting_change", args=[pk])
            else:
                value = default
                if can_add:
                    action_label = "Override"
                    action_url = reverse("admin:core_systemsetting_add") + "?" + urlencode({"key": key})
            rows.append(
                DeclaredSettingRow(
                    key=key,
                    type_name=spec.type_name,
                    constraints=_constraints(spec),
                    value=value,
                    stored=key in stored,
                    problem=problem,
                    default=default,
                    description=spec.help_text,
                    action_label=action_label,
                    action_url=action_url,
                )
            )
        return rows

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        # Only overridden settings have rows; the table above the list shows every declared one and its default.
        context = dict(extra_context or {})
        if request.method == "GET" and self.has_view_or_change_permission(request):
            context["declared_settings"] = self.declared_rows(request, search=request.GET.get("q", ""))
            context.setdefault("title", "System settings")
        return super().changelist_view(request, extra_context=context)

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        # ?key=<setting> (the list's "Override" link) preselects the setting and starts from its default.
        initial = super().get_changeform_initial_data(request)
        spec = REGISTRY.get(str(initial.get("key", "")))
        if spec is not None and "value" not in initial:
            initial["value"] = spec.serialize(spec.default)
        return initial

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        # An "Override" link followed after someone else stored the setting: edit that row instead of
        # offering a form whose save would fail on the unique key.
        key = request.GET.get("key")
        if request.method == "GET" and key and self.has_change_permission(request):
            pk = SystemSetting.objects.filter(key=key).values_list("pk", flat=True).first()
            if pk is not None:
                return HttpResponseRedirect(reverse("admin:core_systemsetting_change", args=[pk]))
        return super().add_view(request, form_url, extra_context)

    def save_model(self, request: HttpRequest, obj: SystemSetting, form: Any, change: bool) -> None:
        saved = system_setting_set(key=obj.key, value=obj.value, actor=Actor.for_user(request.user), request=request)
        adopt_saved(obj, saved)

    def delete_model(self, request: HttpRequest, obj: SystemSetting) -> None:
        system_setting_reset(key=obj.key, actor=Actor.for_user(request.user), request=request)

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        for key in queryset.values_list("key", flat=True):
            system_setting_reset(key=key, actor=Actor.for_user(request.user), request=request)
