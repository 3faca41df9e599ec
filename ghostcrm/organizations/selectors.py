"""Reads of client organisations that any layer may use (commands of accounts, tenants, the engine)."""

from __future__ import annotations

import contextlib
import uuid

from django.db.models import Q

from ghostcrm.core.errors import NotFound
from ghostcrm.organizations.models import Organization

IDENTIFIER_FORMS = "a slug (acme-corp), a schema name (acme_corp) or an id (a UUID)"


def organization_find(*, identifier: str) -> Organization | None:
    """The organisation named by its slug, its schema name or its id, whichever ``identifier`` is; None if none."""
    value = (identifier or "").strip()
    if not value:
        return None
    query = Q(slug=value) | Q(schema_name=value)
    with contextlib.suppress(ValueError):  # not an id: a slug or a schema name
        query |= Q(pk=uuid.UUID(value))
    return Organization.objects.filter(query).first()


def organization_resolve(*, identifier: str) -> Organization:
    """As ``organization_find``, or ``NotFound`` naming the forms an identifier may take.

    Every command takes all three, so an operator can paste what any page, log or command shows.
    """
    organization = organization_find(identifier=identifier)
    if organization is None:
        raise NotFound(
            f"There is no organisation {identifier.strip()!r}; give {IDENTIFIER_FORMS}.",
            code="organization_not_found",
        )
    return organization
