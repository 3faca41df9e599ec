"""Client organisations (main database) and the django-tenants registry (tenant database, public schema).

The main database is the source of truth; the registry row points at its organisation by UUID because
relations never cross databases.
"""

from __future__ import annotations

import uuid
from typing import ClassVar

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django_tenants.models import DomainMixin, TenantMixin

from tenants.schema_names import schema_name_from_slug, validate_schema_name


class Organization(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PROVISIONING = "provisioning", "Provisioning"
        ACTIVE = "active", "Active"
        FAILED = "failed", "Failed"
        SUSPENDED = "suspended", "Suspended"
        DEPROVISIONING = "deprovisioning", "Deprovisioning"
        DELETED = "deleted", "Deleted"
        PURGED = "purged", "Purged"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=63, unique=True, help_text="Lowercase letters, digits and hyphens.")
    schema_name = models.CharField(max_length=63, unique=True, validators=[validate_schema_name], editable=False)
    admin_email = models.EmailField("admin e-mail")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING, db_index=True)
    plan_code = models.CharField(max_length=64, blank=True, help_text="Billing plan code chosen at sign-up.")
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    activated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if not self.schema_name and self.slug:
            self.schema_name = schema_name_from_slug(self.slug)
        if self.schema_name:
            try:
                validate_schema_name(self.schema_name)
            except ValidationError as exc:
                raise ValidationError({"slug": exc.messages}) from None


class Tenant(TenantMixin):
    """django-tenants' registry row for one client schema. Lives in the tenant database."""

    database_alias: ClassVar[str] = settings.TENANT_DB_ALIAS
    organization_id = models.UUIDField(unique=True)  # type: ignore[var-annotated]
    created_at = models.DateTimeField(auto_now_add=True)  # type: ignore[var-annotated]

    # The provisioning service creates the schema (with its roles) and applies the SQL templates itself.
    auto_create_schema = False
    auto_drop_schema = False

    class Meta:
        ordering = ["schema_name"]

    def __str__(self) -> str:
        return self.schema_name


class Domain(DomainMixin):
    database_alias: ClassVar[str] = settings.TENANT_DB_ALIAS

    def __str__(self) -> str:
        return self.domain
