from __future__ import annotations

from django.conf import settings
from django.db import models


class SystemSetting(models.Model):
    """A value an admin set for one of the declared system settings (see ``system_settings.register``).

    Written only through ``ghostcrm.core.services.system_setting_set``, which checks the value against the
    setting's declaration (the model knows nothing of the declarations, so they may read it freely).
    """

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
