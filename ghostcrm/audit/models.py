"""The append-only audit log, made tamper-evident by a keyed hash chain (HMAC-SHA256).

Writers append rows with no shared lock: a new row has no ``sequence`` and no ``hash`` yet. The sealer
(``ghostcrm.audit.sealing``, a periodic job and ``audit_verify``) chains them in order: it gives each its
sequence, the previous link's hash and its own HMAC over its canonical content, so an edited, inserted or
deleted sealed row breaks the chain at that point. ``AuditChainHead`` is the last link, locked only by the
sealer. ``AuditArchive`` rows are the checkpoints of events moved to archive files (docs/audit.md).
"""

from __future__ import annotations

from typing import Any, NoReturn

from django.db import models


class AppendOnlyError(Exception):
    pass


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    def update(self, **kwargs: Any) -> NoReturn:
        raise AppendOnlyError("audit events are append-only")

    def delete(self) -> NoReturn:  # type: ignore[override]
        raise AppendOnlyError("audit events are append-only")


class AuditEvent(models.Model):
    class ActorType(models.TextChoices):
        USER = "user", "User"
        API_KEY = "api_key", "API key"
        SYSTEM = "system", "System"

    class Outcome(models.TextChoices):
        SUCCESS = "success", "Success"
        FAILURE = "failure", "Failure"
        DENIED = "denied", "Denied"

    # Chain position, given when the row is sealed (NULL until then); `id` is the order of appending.
    sequence = models.PositiveBigIntegerField(unique=True, null=True, blank=True, editable=False)
    occurred_at = models.DateTimeField(db_index=True)
    actor_type = models.CharField(max_length=16, choices=ActorType.choices)
    actor_id = models.CharField(max_length=64, blank=True)
    actor_label = models.CharField(max_length=255, blank=True)
    action = models.CharField(max_length=100, db_index=True)
    target_type = models.CharField(max_length=100, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_repr = models.CharField(max_length=255, blank=True)
    organization_id = models.UUIDField(null=True, blank=True, db_index=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    request_id = models.CharField(max_length=64, blank=True, help_text="HTTP request id or RQ job id.")
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.SUCCESS)
    message = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    prev_hash = models.CharField(max_length=64, blank=True)
    hash = models.CharField(max_length=64, unique=True, null=True, blank=True)
    key_id = models.CharField(max_length=32, blank=True, help_text="The AUDIT_HMAC_KEYS key that sealed it.")

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["target_type", "target_id"], name="audit_target_idx")]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.action} {self.target_repr}".strip()

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnlyError("audit events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise AppendOnlyError("audit events are append-only")


class AuditChainHead(models.Model):
    """The last sealed link of the chain (one row, id 1), locked with SELECT ... FOR UPDATE by the sealer only."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    sequence = models.PositiveBigIntegerField(default=0)
    hash = models.CharField(max_length=64)

    def __str__(self) -> str:
        return f"head #{self.sequence}"


class AuditArchive(models.Model):
    """The checkpoint of one archive file: events up to ``last_sequence`` left the log for that file.

    Signed with the audit key (``signature`` over every other field), so a forged or edited checkpoint is
    found; ``audit_verify`` starts the live chain from the newest one.
    """

    created_at = models.DateTimeField()
    first_sequence = models.PositiveBigIntegerField()
    last_sequence = models.PositiveBigIntegerField(unique=True)
    first_prev_hash = models.CharField(max_length=64)
    last_hash = models.CharField(max_length=64)
    event_count = models.PositiveBigIntegerField()
    file_name = models.CharField(max_length=255, unique=True)
    file_sha256 = models.CharField(max_length=64)
    key_id = models.CharField(max_length=32)
    signature = models.CharField(max_length=64)

    class Meta:
        ordering = ["-last_sequence"]

    def __str__(self) -> str:
        return f"#{self.first_sequence}-#{self.last_sequence} in {self.file_name}"
