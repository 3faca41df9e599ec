from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from ghostcrm.core.system_settings import REGISTRY


class SystemSetting(models.Model):
    """A value an admin set for one of the declared system settings (see ``system_settings.register``)."""

    key = models.CharField(max_length=100, unique=True)
    value = models.TextField(help_text="Typed text: parsed and validated against the setting's declaration.")
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return f"{self.key} = {self.value}"

    def clean(self) -> None:
        spec = REGISTRY.get(self.key)
        if spec is None:
            raise ValidationError({"key": f"{self.key!r} is not a known system setting."})
        try:
            self.value = spec.serialize(spec.parse(self.value))
        except ValidationError as exc:
            raise ValidationError({"value": exc.messages}) from None
