"""Support reads of one client's CRM through the read-only mirrors (the organisation's "CRM" page).

Read as the control plane's database owner, which bypasses the schema's row-level security: for operators
helping a client, never for end users.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import DatabaseError

from tenants.crm.models import Company, Contact, CrmUser, Deal
from tenants.db import tenant_schema

USERS_SHOWN = 100


@dataclass
class CrmSummary:
    users: list[CrmUser] = field(default_factory=list)
    users_total: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    error: str = ""


def crm_summary(*, schema: str) -> CrmSummary:
    """The client's CRM users (first ``USERS_SHOWN`` by e-mail) and how many companies, contacts and deals it
    holds (deleted ones left out); ``error`` when the tenant database or the schema cannot be read."""
    try:
        with tenant_schema(schema):
            # Evaluated inside the block: a lazy queryset evaluated later would read ``public``.
            users = list(CrmUser.objects.order_by("email")[:USERS_SHOWN])
            return CrmSummary(
                users=users,
                users_total=CrmUser.objects.count(),
                counts={
                    "companies": Company.objects.filter(deleted_at__isnull=True).count(),
                    "contacts": Contact.objects.filter(deleted_at__isnull=True).count(),
                    "deals": Deal.objects.filter(deleted_at__isnull=True).count(),
                },
            )
    except DatabaseError as exc:
        return CrmSummary(error=str(exc).strip() or type(exc).__name__)
