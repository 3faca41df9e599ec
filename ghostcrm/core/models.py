from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models


class SystemSetting(models.Model):
    """A value an admin set for one of the declared system settings (see ``system_settings.register``).

    ``clean`` checks and normalises the value against the setting's declaration, found through
    ``spec_lookup``, which ``ghostcrm.core.system_settings`` installs: the model does not import the
    declarations, so they may read the model (``setting_value``) without an import cycle.
    """

    spec_lookup: ClassVar[Callable[[str], Any] | None] = None

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
        lookup = type(self).spec_lookup
        spec = lookup(self.key) if lookup is not None else None
        if spec is None:
            raise ValidationError({"key": f"{self.key!r} is not a known system setting."})
        self.value = spec.normalise(self.value)
