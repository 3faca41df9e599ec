"""Reading integration preferences."""

from __future__ import annotations

import uuid

from django.db.models import QuerySet

from ghostcrm.core.errors import NotFound
from ghostcrm.integrations.models import IntegrationPreference


def integration_preference_get(*, organization_id: uuid.UUID | str, provider: str) -> IntegrationPreference:
    preference = IntegrationPreference.objects.filter(organization_id=organization_id, provider=provider).first()
    if preference is None:
        raise NotFound(f"No {provider} integration preference for organisation {organization_id}.")
    return preference


def integration_preferences_enabled(*, organization_id: uuid.UUID | str) -> QuerySet[IntegrationPreference]:
    """The organisation's enabled integrations, for whatever delivers events to them."""
    return IntegrationPreference.objects.filter(organization_id=organization_id, enabled=True).order_by("provider")
