"""The central template ledger: one row per schema and template file applied (or attempted).

It lives in the tenant database's ``public`` schema, beside the django-tenants registry, so that the
status of every tenant is one query, and so that a success row is written in the same transaction as the
template's DDL (the engine inserts it over its own connection, referring to ``public.tenant_sql_ledger``).
"""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

LEDGER_TABLE = "tenant_sql_ledger"


class TemplateApplication(models.Model):
    database_alias: ClassVar[str] = settings.TENANT_DB_ALIAS

    schema_name = models.CharField(max_length=63)
    version = models.PositiveIntegerField()
    description = models.CharField(max_length=200)
    filename = models.CharField(max_length=255)
    checksum = models.CharField(max_length=64, help_text="SHA-256 of the template file as stored on disk.")
    applied_by = models.CharField(max_length=150)
    applied_at = models.DateTimeField(default=timezone.now)
    duration_ms = models.PositiveIntegerField(default=0)
    success = models.BooleanField()
    sqlstate = models.CharField(max_length=5, blank=True)
    error = models.TextField(blank=True)
    failed_statement = models.TextField(blank=True, help_text="The statement PostgreSQL rejected, as sent.")
    failed_line = models.PositiveIntegerField(null=True, blank=True, help_text="Line in the file where it starts.")

    class Meta:
        db_table = LEDGER_TABLE
        ordering = ["schema_name", "version", "applied_at"]
        constraints = [
            # Failures are history and may repeat; a version is applied successfully at most once per schema.
            models.UniqueConstraint(
                fields=["schema_name", "version"], condition=Q(success=True), name="tenant_sql_ledger_one_success"
            ),
        ]
        indexes = [models.Index(fields=["schema_name", "version"], name="tenant_sql_ledger_schema_idx")]

    def __str__(self) -> str:
        outcome = "applied" if self.success else "failed"
        return f"{self.schema_name}: {self.filename} {outcome}"
