"""The retention policy: one rule per kind of row that grows with time, run daily and by ``retention run``.

Each rule answers two questions for one moment ``now``: how many rows it would remove (``plan``, the dry
run) and remove them (``apply``). Both use the same selection, so a dry run reports what the real run then
does. Adding a kind is one ``Rule`` in ``RULES``: a name, the system setting it reads, and the two functions.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import django_rq
from django.conf import settings
from django.core.files.base import ContentFile, File
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone
from redis.exceptions import RedisError
from rq.registry import BaseRegistry, DeferredJobRegistry, FailedJobRegistry, FinishedJobRegistry, StartedJobRegistry

from billing.models import UsageReading, WebhookEvent
from ghostcrm.audit.archives import audit_archive
from ghostcrm.audit.models import AuditEvent
from ghostcrm.audit.services import Actor, audit_record
from ghostcrm.core.errors import TransientError
from ghostcrm.core.system_settings import setting_value
from operations.models import Outcome, RetentionRun
from operations.storage import backups_storage
from tenants.engine.models import TemplateApplication
from tenants.models import IdempotencyRecord, Operation

SYSTEM = Actor.system("retention")
BATCH = 5000


@dataclass
class Context:
    now: dt.datetime
    run: RetentionRun
    archives: list[dict[str, Any]] = field(default_factory=list)

    def cutoff(self, setting: str, unit: str = "days") -> dt.datetime:
        return self.now - dt.timedelta(**{unit: int(setting_value(setting))})


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    plan: Callable[[Context], int]
    apply: Callable[[Context], int]


# --- template ledger failures (tenant database) -------------------------------------------------------


def _ledger_failures(ctx: Context) -> QuerySet[TemplateApplication]:
    ledger = TemplateApplication.objects.using(settings.TENANT_DB_ALIAS)
    superseded = ledger.filter(schema_name=OuterRef("schema_name"), version=OuterRef("version"), success=True)
    old = Q(applied_at__lt=ctx.cutoff("retention.ledger_failures_days"))
    return ledger.filter(success=False).filter(old | Q(Exists(superseded)))


def _delete(queryset: QuerySet[Any]) -> int:
    return int(queryset.delete()[0])


# --- operations, archived before they are deleted -----------------------------------------------------


def _old_operations(ctx: Context) -> QuerySet[Operation]:
    return Operation.objects.filter(started_at__lt=ctx.cutoff("retention.operations_days"))


def _archive_operations(ctx: Context) -> int:
    """Write the old operations to a gzip JSON-lines file (plus a ``.sha256``) in the storage, then delete them."""
    rows = _old_operations(ctx).order_by("id")
    ids: list[int] = []
    with tempfile.NamedTemporaryFile(suffix=".jsonl.gz", delete=False) as handle:
        path = Path(handle.name)
    try:
        with gzip.open(path, "wt", encoding="utf-8") as archive:
            for row in rows.values().iterator(chunk_size=BATCH):
                archive.write(json.dumps(row, cls=DjangoJSONEncoder, sort_keys=True) + "\n")
                ids.append(row["id"])
        if not ids:
            return 0
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        stamp = ctx.now.strftime("%Y%m%dT%H%M%SZ")
        storage = backups_storage()
        with path.open("rb") as source:
            name = storage.save(f"archives/operations/operations-{stamp}-run{ctx.run.pk}.jsonl.gz", File(source))
        storage.save(name + ".sha256", ContentFile(f"{digest}  {Path(name).name}\n".encode()))
    finally:
        path.unlink(missing_ok=True)
    ctx.archives.append({"rule": "operations", "file": name, "rows": len(ids), "sha256": digest})
    deleted = 0
    for start in range(0, len(ids), BATCH):
        with transaction.atomic():
            deleted += _delete(Operation.objects.filter(pk__in=ids[start : start + BATCH]))
    return deleted


# --- idempotency records, webhook events -------------------------------------------------------------


def _old_idempotency(ctx: Context) -> QuerySet[IdempotencyRecord]:
    return IdempotencyRecord.objects.filter(created_at__lt=ctx.cutoff("retention.idempotency_hours", "hours"))


def _old_webhook_events(ctx: Context) -> QuerySet[WebhookEvent]:
    done = [WebhookEvent.Status.PROCESSED, WebhookEvent.Status.IGNORED]
    return WebhookEvent.objects.filter(status__in=done, received_at__lt=ctx.cutoff("retention.webhook_events_days"))


# --- usage readings: one per organisation and day after N days ---------------------------------------


def _surplus_readings(ctx: Context) -> Iterator[int]:
    """Ids of old readings that are not the last of their organisation's day."""
    old = UsageReading.objects.filter(taken_at__lt=ctx.cutoff("retention.usage_readings_days"))
    seen: set[tuple[Any, dt.date]] = set()
    rows = old.order_by("organization_id", "-taken_at", "-id").values_list("id", "organization_id", "taken_at")
    for reading_id, organization_id, taken_at in rows.iterator(chunk_size=BATCH):
        day = (organization_id, timezone.localtime(taken_at, dt.UTC).date())
        if day in seen:
            yield reading_id
        else:
            seen.add(day)


def _downsample(ctx: Context) -> int:
    ids = list(_surplus_readings(ctx))
    deleted = 0
    for start in range(0, len(ids), BATCH):
        deleted += _delete(UsageReading.objects.filter(pk__in=ids[start : start + BATCH]))
    return deleted


# --- RQ: entries whose TTL has passed ----------------------------------------------------------------


def _registries() -> Iterator[BaseRegistry]:
    for name in settings.RQ_QUEUES:
        queue = django_rq.get_queue(name)
        for registry in (FinishedJobRegistry, FailedJobRegistry, StartedJobRegistry, DeferredJobRegistry):
            yield registry(queue=queue)


def _expired_rq(ctx: Context) -> int:
    try:
        return sum(len(r.get_expired_job_ids(ctx.now.timestamp())) for r in _registries())
    except RedisError as exc:
        raise TransientError(f"Redis did not answer: {exc}") from exc


def _clean_rq(ctx: Context) -> int:
    expired = _expired_rq(ctx)
    for registry in _registries():
        registry.cleanup(int(ctx.now.timestamp()))
    return expired


# --- audit events: archived behind a signed checkpoint (ghostcrm.audit.archives), never silently dropped ----


def _audit_days() -> int:
    return int(setting_value("retention.audit_days"))


def _archive_audit(ctx: Context) -> int:
    result = audit_archive(older_than_days=_audit_days(), dry_run=False)
    if result.events:
        ctx.archives.append(
            {"rule": "audit", "file": result.file_name, "rows": result.events, "sha256": result.file_sha256}
        )
    return result.events


RULES: list[Rule] = [
    Rule(
        "ledger_failures",
        "template-ledger failures older than retention.ledger_failures_days, and failures a success superseded",
        lambda ctx: _ledger_failures(ctx).count(),
        lambda ctx: _delete(_ledger_failures(ctx)),
    ),
    Rule(
        "operations",
        "operations older than retention.operations_days, archived as gzip JSON lines with a SHA-256",
        lambda ctx: _old_operations(ctx).count(),
        _archive_operations,
    ),
    Rule(
        "idempotency_records",
        "idempotency records older than retention.idempotency_hours (24 h, as Stripe)",
        lambda ctx: _old_idempotency(ctx).count(),
        lambda ctx: _delete(_old_idempotency(ctx)),
    ),
    Rule(
        "webhook_events",
        "processed or ignored webhook events older than retention.webhook_events_days",
        lambda ctx: _old_webhook_events(ctx).count(),
        lambda ctx: _delete(_old_webhook_events(ctx)),
    ),
    Rule(
        "usage_readings",
        "usage readings older than retention.usage_readings_days, downsampled to the last one per day",
        lambda ctx: sum(1 for _ in _surplus_readings(ctx)),
        _downsample,
    ),
    Rule(
        "rq_results",
        "RQ registry entries past their own TTL (results, failures, abandoned starts)",
        _expired_rq,
        _clean_rq,
    ),
    Rule(
        "audit",
        "sealed audit events older than retention.audit_days, archived behind a signed checkpoint",
        lambda ctx: audit_archive(older_than_days=_audit_days(), dry_run=True).events,
        _archive_audit,
    ),
]


@dataclass
class RetentionReport:
    run: RetentionRun

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.run.pk,
            "dry_run": self.run.dry_run,
            "outcome": self.run.outcome,
            "counts": self.run.counts,
            "archives": self.run.archives,
            "error": self.run.error,
        }


def policy() -> list[dict[str, str]]:
    return [{"rule": rule.name, "removes": rule.description} for rule in RULES]


def retention_run(
    *,
    dry_run: bool,
    actor: Actor = SYSTEM,
    now: dt.datetime | None = None,
    progress: Callable[[str], None] | None = None,
) -> RetentionReport:
    """Run every rule (or count, in a dry run); a failing rule is reported and the others still run. Audited."""
    ctx = Context(
        now=now or timezone.now(), run=RetentionRun.objects.create(dry_run=dry_run, started_at=timezone.now())
    )
    errors: list[str] = []
    counts: dict[str, int | None] = {}
    for rule in RULES:
        try:
            counts[rule.name] = (rule.plan if dry_run else rule.apply)(ctx)
        except TransientError as exc:
            counts[rule.name] = None
            errors.append(f"{rule.name}: {exc.message}")
        if progress is not None:
            verb = "would remove" if dry_run else "removed"
            progress(f"{rule.name}: {verb} {counts[rule.name] if counts[rule.name] is not None else '?'}")
    run = ctx.run
    run.counts, run.archives, run.error = counts, ctx.archives, "; ".join(errors)
    run.outcome = Outcome.FAILURE if errors else Outcome.SUCCESS
    run.finished_at = timezone.now()
    run.save()
    audit_record(
        action="retention.dry_run" if dry_run else "retention.run",
        actor=actor,
        target=run,
        after={"counts": counts, "archives": ctx.archives},
        outcome=AuditEvent.Outcome.FAILURE if errors else AuditEvent.Outcome.SUCCESS,
        message=", ".join(f"{k} {v}" for k, v in counts.items()) + (f"; errors: {run.error}" if errors else ""),
    )
    return RetentionReport(run)
