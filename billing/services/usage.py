"""Usage readings: active CRM users and live contacts counted in each tenant's schema."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DatabaseError, transaction
from psycopg import sql

from billing.models import UsageReading
from billing.services.common import RunSummary, clean_save, now_or
from ghostcrm.audit.services import Actor, audit_record
from ghostcrm.core.errors import ApplicationError, Conflict, NotFound, ValidationError
from ghostcrm.organizations.models import Organization
from tenants.db import tenant_schema
from tenants.schema_names import validate_schema_name

# --- Usage -------------------------------------------------------------------------------------------


def usage_reading_take(*, organization_id: uuid.UUID | str, at: dt.datetime | None = None) -> UsageReading:
    """Count active CRM users and live contacts in the organisation's schema and store the reading."""
    at = now_or(at)
    organization = Organization.objects.filter(pk=organization_id).first()
    if organization is None:
        raise NotFound(f"There is no organisation {organization_id}.", code="organization_not_found")
    schema = organization.schema_name
    try:
        validate_schema_name(schema)
    except DjangoValidationError as exc:
        raise ValidationError(" ".join(exc.messages), code="invalid_schema_name") from None
    query = sql.SQL(
        "SELECT (SELECT count(*) FROM {schema}.crm_users WHERE is_active),"
        " (SELECT count(*) FROM {schema}.contacts WHERE deleted_at IS NULL)"
    ).format(schema=sql.Identifier(schema))
    try:
        # A savepoint when called inside a transaction: a missing table must not poison the caller's work.
        with (
            tenant_schema(schema) as connection,
            transaction.atomic(using=connection.alias),
            connection.cursor() as cursor,
        ):
            cursor.execute(query.as_string(cursor.connection))
            seats, contacts = cursor.fetchone()
    except DatabaseError as exc:  # a missing schema or table: the tenant is not (fully) provisioned
        raise Conflict(
            f"Cannot count usage in schema {schema!r} of {organization}: {str(exc).splitlines()[0]}",
            code="usage_unavailable",
        ) from None
    reading = UsageReading(organization=organization, taken_at=at, seats=seats, contacts=contacts)
    clean_save(reading)
    return reading


def usage_due() -> list[uuid.UUID]:
    """The organisations a usage run reads: every active one, oldest first."""
    return list(Organization.objects.filter(status="active").order_by("created_at").values_list("pk", flat=True))


def usage_readings_run(*, actor: Actor, at: dt.datetime | None = None, progress: Any = None) -> RunSummary:
    """A reading for every active organisation; one failing tenant does not stop the others."""
    at = now_or(at)
    summary = RunSummary()
    for organization_id in usage_due():
        summary.processed += 1
        try:
            usage_reading_take(organization_id=organization_id, at=at)
            summary.changed += 1
        except ApplicationError as exc:
            summary.failed += 1
            summary.errors.append(f"organisation {organization_id}: {exc.message}")
        if progress is not None:
            progress(organization_id)
    audit_record(
        action="billing.usage.run",
        actor=actor,
        message=str(summary),
        outcome="success" if not summary.failed else "failure",
    )
    return summary
