"""Records of the operations area (main database): backups, restore drills and retention runs."""

from __future__ import annotations

from django.db import models


class Outcome(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCESS = "success", "Success"
    FAILURE = "failure", "Failure"


class Backup(models.Model):
    """One encrypted backup file in the ``backups`` storage: a client's schema or the main database.

    ``manifest`` holds what a restore and a drill need to check the result: the schema's catalog
    fingerprint and per-table row counts taken in the dump's own snapshot.
    """

    class Kind(models.TextChoices):
        TENANT = "tenant", "Client schema"
        MAIN = "main", "Main database"

    id = models.BigAutoField(primary_key=True)
    kind = models.CharField(max_length=10, choices=Kind.choices, db_index=True)
    organization_id = models.UUIDField(null=True, blank=True, db_index=True)
    organization_slug = models.CharField(max_length=63, blank=True, db_index=True)
    schema_name = models.CharField(max_length=63, blank=True)
    server = models.CharField(max_length=100, help_text="The database server dumped (tenant server name or engine).")
    engine = models.CharField(max_length=20, help_text="postgresql, sqlite or mssql.")
    storage_name = models.CharField(max_length=500, blank=True, help_text="Path of the file in the backups storage.")
    size_bytes = models.BigIntegerField(null=True, blank=True, help_text="Size of the encrypted file.")
    sha256 = models.CharField(max_length=64, blank=True, help_text="SHA-256 of the encrypted file as stored.")
    key_id = models.CharField(max_length=16, blank=True, help_text="Fingerprint of the encryption key used.")
    manifest = models.JSONField(default=dict, blank=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.RUNNING, db_index=True)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    pruned_at = models.DateTimeField(null=True, blank=True, help_text="When retention removed the file.")

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["kind", "organization_slug", "-started_at"], name="ops_backup_kind_slug_idx")]

    def __str__(self) -> str:
        what = self.organization_slug or "main database"
        return f"backup #{self.pk} of {what} ({self.outcome})"


class DrillRun(models.Model):
    """One restore drill: N recent backups restored into scratch schemas and compared with their manifests."""

    id = models.BigAutoField(primary_key=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.RUNNING, db_index=True)
    sample = models.PositiveIntegerField()
    checked = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    results = models.JSONField(default=list, blank=True, help_text="Per backup: id, slug, ok, differences.")
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"drill #{self.pk} ({self.outcome}, {self.checked} checked, {self.failed} failed)"


class RetentionRun(models.Model):
    """One run of the retention policy: per rule, what it removed (or would have, in a dry run)."""

    id = models.BigAutoField(primary_key=True)
    dry_run = models.BooleanField(default=False)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.RUNNING)
    counts = models.JSONField(default=dict, blank=True, help_text="Per rule: rows removed or archived.")
    archives = models.JSONField(default=list, blank=True, help_text="Archive files written: name, rows, SHA-256.")
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"retention run #{self.pk}{' (dry run)' if self.dry_run else ''}"
