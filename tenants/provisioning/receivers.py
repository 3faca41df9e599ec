"""Signals from lower layers that provisioning answers (connected in ``tenants.apps``)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction
from psycopg import sql

from ghostcrm.audit.models import AuditEvent
from ghostcrm.audit.services import Actor, audit_record
from ghostcrm.organizations.models import Organization
from tenants.db import tenant_connection
from tenants.provisioning.steps import TENANT_ADMIN_ROLE, crm_users_table

Status = Organization.Status


def invitation_accepted_receiver(sender: Any, invitation: Any, password_hash: str, **kwargs: Any) -> None:
    """Store the accepted tenant admin's password hash on their CRM user inside the tenant schema."""
    organization_id = getattr(invitation, "organization_id", None)
    if getattr(invitation, "role", "") != TENANT_ADMIN_ROLE or organization_id is None:
        return
    organization = Organization.objects.filter(pk=organization_id).first()
    if organization is None or organization.status not in {Status.ACTIVE, Status.PROVISIONING}:
        return
    connection = tenant_connection()
    connection.ensure_connection()
    statement = sql.SQL("UPDATE {} SET password_hash = %s, updated_at = now() WHERE lower(email) = lower(%s)").format(
        crm_users_table(organization.schema_name)
    )
    with transaction.atomic(using=settings.TENANT_DB_ALIAS), connection.cursor() as cursor:
        cursor.execute(statement.as_string(connection.connection), [password_hash, invitation.email])
        updated = cursor.rowcount
    audit_record(
        action="tenant_admin.password_set",
        actor=Actor.system("invitations"),
        target=organization,
        message=f"password set for Tenant CRM admin {invitation.email}"
        if updated
        else f"no CRM user {invitation.email}",
        outcome=AuditEvent.Outcome.SUCCESS if updated else AuditEvent.Outcome.FAILURE,
    )
