"""Client organisations (main database) and the django-tenants registry (tenant database, public schema).

The main database is the source of truth; the registry row points at its organisation by UUID because
relations never cross databases.
"""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django_tenants.models import DomainMixin, TenantMixin

from ghostcrm.organizations.models import Organization


class ProvisioningDashboard(Organization):
    """No data of its own: gives the provisioning dashboard an entry on the admin index."""

    class Meta:
        proxy = True
        verbose_name = "provisioning dashboard"
        verbose_name_plural = "provisioning dashboard"


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


class Operation(models.Model):
    """One step of an organisation's lifecycle as it ran: what, which attempt, how long, how it ended.

    Provisioning writes one row per step (registry, schema, templates, admin user, invitation, activation)
    so the admin can see where a client is and where it failed; transitions write one row each too.
    """

    class Outcome(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCESS = "success", "Success"
        FAILURE = "failure", "Failure"
        SKIPPED = "skipped", "Skipped"
        # A run killed mid-step left it running; the reconciler closed it.
        ABANDONED = "abandoned", "Abandoned"

    id = models.BigAutoField(primary_key=True)
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="operations", verbose_name="client organisation"
    )
    step = models.CharField(max_length=40, db_index=True)
    attempt = models.PositiveIntegerField(default=1)
    from_status = models.CharField(max_length=20, blank=True)
    to_status = models.CharField(max_length=20, blank=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.RUNNING)
    started_at = models.DateTimeField(db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    message = models.TextField(blank=True)
    job_id = models.CharField("RQ job id", max_length=64, blank=True)
    actor_label = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["organization", "step"], name="tenants_op_org_step_idx")]

    def __str__(self) -> str:
        return f"{self.step} #{self.attempt} ({self.outcome})"


class IdempotencyRecord(models.Model):
    """The first result of a request carrying an ``Idempotency-Key``: a replay returns the same organisation.

    ``key`` is scoped by the caller (the API prefixes it with the service key's id), and ``fingerprint``
    is a hash of the request body, so the same key with another body can be refused.
    """

    id = models.BigAutoField(primary_key=True)
    key = models.CharField(max_length=255, unique=True)
    fingerprint = models.CharField(max_length=64)
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="+", verbose_name="client organisation"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.key


class ServiceKey(models.Model):
    """A service-role API key. Only a SHA-256 hash of the secret is stored; the key is shown once.

    The full key reads ``gcrm_<prefix>_<secret>``: the prefix is not secret and finds the row, the secret
    (256 bits from ``secrets``) is compared by hash in constant time.
    """

    class Scope(models.TextChoices):
        ORGANIZATIONS_READ = "organizations:read", "Read organisations and operations"
        ORGANIZATIONS_WRITE = "organizations:write", "Request new organisations"
        ORGANIZATIONS_LIFECYCLE = "organizations:lifecycle", "Retry, suspend, resume, deprovision"

    id = models.BigAutoField(primary_key=True)
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    scopes = models.CharField(max_length=255, help_text="Space-separated scopes.")
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: never expires.")
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    audit_redacted_fields = ("key_hash",)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} (gcrm_{self.prefix}_…)"

    @property
    def scope_list(self) -> list[str]:
        return self.scopes.split()

    def clean(self) -> None:
        unknown = sorted(set(self.scope_list) - set(self.Scope.values))
        if unknown:
            raise ValidationError({"scopes": f"Unknown scope(s): {', '.join(unknown)}."})
        if not self.scope_list:
            raise ValidationError({"scopes": "Give at least one scope."})
