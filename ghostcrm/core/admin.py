from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
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
        self.fields["key"].choices = [(key, key) for key in sorted(REGISTRY)]  # type: ignore[attr-defined]
        key = self.initial.get("key") or (self.instance.key if self.instance.pk else "")
        if key in REGISTRY:
            spec = REGISTRY[key]
            self.fields["value"].help_text = f"{spec.help_text} Expects {spec.type_name}; default {spec.default!r}."


@admin.register(SystemSetting)
class SystemSettingAdmin(AuditedModelAdmin):
    form = SystemSettingForm
    list_display = ("key", "value", "default", "description", "updated_at", "updated_by")
    search_fields = ("key",)
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
