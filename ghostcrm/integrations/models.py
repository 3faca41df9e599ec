"""Per-organisation integration preferences; credentials are encrypted at rest."""

from __future__ import annotations

import uuid
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models

from ghostcrm.core.fields import EncryptedJSONField
from ghostcrm.integrations.providers import PROVIDER_CHOICES, PROVIDERS, validate_preference


class IntegrationPreference(models.Model):
    """How one organisation uses one provider: on/off, plain settings, and secrets (never shown back)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(
        "organizations.Organization", on_delete=models.CASCADE, related_name="integration_preferences"
    )
    provider = models.CharField(max_length=32, choices=PROVIDER_CHOICES)
    enabled = models.BooleanField(default=False)
    settings = models.JSONField(default=dict, blank=True, help_text="Non-secret settings, a JSON object.")
    secrets = EncryptedJSONField(default=dict, blank=True, help_text="Credentials, encrypted at rest.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["organization__name", "provider"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "provider"], name="integration_org_provider_unique")
        ]
        indexes = [models.Index(fields=["provider", "enabled"], name="integration_provider_idx")]

    def __str__(self) -> str:
        spec = PROVIDERS.get(self.provider)
        label = spec.label if spec else self.provider
        return f"{label} for {self.organization}" if self.organization_id else label

    @property
    def secret_names(self) -> list[str]:
        return sorted(self.secrets) if isinstance(self.secrets, dict) else []

    def audit_snapshot_extra(self) -> dict[str, Any]:
        return {"secret_names": self.secret_names}

    def clean(self) -> None:
        if not self.provider:
            return  # the field's own "required" error says it
        errors = validate_preference(
            provider=self.provider, settings=self.settings, secrets=self.secrets, enabled=self.enabled
        )
        if self.enabled and self.provider in PROVIDERS and "provider" not in errors:
            from ghostcrm.core.system_settings import setting_value

            allowed = setting_value("integrations.enabled_providers")
            if self.provider not in allowed:
                errors["enabled"] = [
                    f"{PROVIDERS[self.provider].label} may not be enabled: the system setting "
                    f"integrations.enabled_providers allows only {', '.join(allowed) or 'none'}."
                ]
        if errors:
            raise ValidationError(errors)
