from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.http import HttpRequest

from ghostcrm.core.admin_base import AuditedModelAdmin
from ghostcrm.core.models import SystemSetting
from ghostcrm.core.system_settings import REGISTRY


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

    def save_model(self, request: HttpRequest, obj: SystemSetting, form: Any, change: bool) -> None:
        obj.updated_by = request.user  # type: ignore[assignment]
        super().save_model(request, obj, form, change)
