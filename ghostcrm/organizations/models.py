"""The client organisation, in the main database: the one model every layer may depend on.

Its table keeps its first name (``tenants_organization``): the model moved here from ``tenants`` without a
database change. The lifecycle that moves ``status`` lives in ``tenants.services``.
"""

from __future__ import annotations

import uuid

from django.core.exceptions import ValidationError
from django.db import models

from ghostcrm.core.fields import EncryptedTextField
from ghostcrm.organizations.schema_names import schema_name_from_slug, validate_schema_name


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
    # The tenant app role's password: generated once at provisioning, kept encrypted so a re-run reuses it.
    app_role_password = EncryptedTextField(null=True, blank=True, editable=False)
    # Set once the tenant admin's invitation went out, so a re-run job never invites twice.
    invited_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    purge_after = models.DateTimeField(null=True, blank=True, help_text="When the retention purge drops the schema.")
    export_path = models.CharField(max_length=500, blank=True, help_text="The pg_dump export kept after deletion.")

    class Meta:
        # The product's word for a customer (en-GB), not Django's default "organizations".
        verbose_name = "client organisation"
        verbose_name_plural = "client organisations"
        db_table = "tenants_organization"
        ordering = ["-created_at"]
        permissions = [("lifecycle_organization", "Can retry, suspend, resume and deprovision organisations")]

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
