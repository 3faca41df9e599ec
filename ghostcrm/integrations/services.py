"""Writes to integration preferences. Every change is validated against the provider's declaration and audited."""

from __future__ import annotations

import uuid
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, router, transaction
from django.http import HttpRequest

from ghostcrm.audit.services import Actor, audit_record, model_snapshot
from ghostcrm.core.errors import Conflict, NotFound, ValidationError, full_clean_or_raise
from ghostcrm.integrations.models import IntegrationPreference
from ghostcrm.integrations.providers import PROVIDERS
from ghostcrm.organizations.models import Organization


def _check_provider(provider: str) -> None:
    if provider not in PROVIDERS:
        raise ValidationError(
            f"Unknown provider {provider!r}; choose one of {', '.join(PROVIDERS)}.",
            extra={"fields": {"provider": ["unknown provider"]}},
        )


def _check_secret_values(secrets: Any, *, allow_removal: bool) -> dict[str, str | None]:
    if not isinstance(secrets, dict):
        raise ValidationError("Secrets must be an object of secret names to text values.")
    for name, value in secrets.items():
        if not isinstance(name, str) or not (isinstance(value, str) or (allow_removal and value is None)):
            raise ValidationError(
                f"Secret {name!r} must be text" + (" (or null to remove it)." if allow_removal else "."),
                extra={"fields": {"secrets": [f"{name} must be text"]}},
            )
    return secrets


def merge_secrets(existing: dict[str, str] | None, updates: dict[str, str | None]) -> dict[str, str]:
    """The stored secrets with ``updates`` applied: a text value sets a name, null or empty text removes it."""
    merged = dict(existing or {})
    for name, value in updates.items():
        if value in (None, ""):
            merged.pop(name, None)
        else:
            merged[name] = value  # type: ignore[assignment]
    return merged


def _organization(organization_id: uuid.UUID | str) -> Organization:
    try:
        return Organization.objects.get(pk=organization_id)
    except (Organization.DoesNotExist, DjangoValidationError, ValueError):
        raise NotFound(f"Organisation {organization_id} does not exist.") from None


def integration_preference_set(
    *,
    organization_id: uuid.UUID | str,
    provider: str,
    actor: Actor,
    enabled: bool | None = None,
    settings: dict[str, Any] | None = None,
    secrets: dict[str, str | None] | None = None,
    request: HttpRequest | None = None,
) -> IntegrationPreference:
    """Create or update one organisation's preference for one provider.

    ``None`` leaves a part as it is (a new preference starts disabled, with no settings or secrets).
    ``settings`` replaces the settings object; ``secrets`` sets the names it gives and removes those given
    as null, keeping the others. Validated against the provider's declaration; nothing is written when invalid.
    """
    _check_provider(provider)
    if secrets is not None:
        _check_secret_values(secrets, allow_removal=True)
    organization = _organization(organization_id)
    try:
        with transaction.atomic(using=router.db_for_write(IntegrationPreference)):
            preference = (
                IntegrationPreference.objects.select_for_update()
                .filter(organization=organization, provider=provider)
                .first()
            )
            before = model_snapshot(preference) if preference is not None else None
            if preference is None:
                preference = IntegrationPreference(organization=organization, provider=provider)
            if enabled is not None:
                preference.enabled = enabled
            if settings is not None:
                preference.settings = settings
            if secrets is not None:
                preference.secrets = merge_secrets(preference.secrets, secrets)
            full_clean_or_raise(preference)
            preference.save()
            changed = sorted(secrets or {})
            audit_record(
                action="integration.preference_set",
                actor=actor,
                target=preference,
                before=before,
                after=model_snapshot(preference),
                message=f"secrets changed: {', '.join(changed)}" if changed else "",
                request=request,
            )
    except IntegrityError:
        raise Conflict(
            f"A {provider} preference for this organisation was created at the same moment; try again."
        ) from None
    return preference
