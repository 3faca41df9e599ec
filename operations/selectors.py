"""Reads of the operations area: backups, drills, queues and tenant servers."""

from __future__ import annotations

import datetime as dt
from typing import Any

import django_rq
from django.conf import settings
from django.db.models import Count, QuerySet
from django.utils import timezone
from redis.exceptions import RedisError
from rq.registry import FailedJobRegistry, FinishedJobRegistry

from ghostcrm.core.errors import NotFound
from ghostcrm.organizations.models import Organization
from operations.models import Backup, DrillRun, Outcome

PRIMARY_SERVER = "primary"
LIVE = ("pending", "provisioning", "active", "failed", "suspended", "deprovisioning")


def tenant_servers() -> dict[str, dict[str, Any]]:
    """The tenant database servers by name, with their connection settings.

    Today one: ``primary``, the server of ``TENANT_DATABASE_URL``. The fleet (issue 12) adds the others
    here, and everything in this app that loops over servers covers them.
    """
    return {PRIMARY_SERVER: dict(settings.DATABASES[settings.TENANT_DB_ALIAS])}


def server_of(organization: Organization) -> str:
    return PRIMARY_SERVER


def clients_per_server() -> dict[str, int]:
    live = Organization.objects.filter(status__in=LIVE).count()
    return {name: (live if name == PRIMARY_SERVER else 0) for name in tenant_servers()}


def backup_get(*, backup_id: int | str) -> Backup:
    try:
        return Backup.objects.get(pk=int(backup_id))
    except (Backup.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"There is no backup #{backup_id}.", code="backup_not_found") from None


def backups_list(*, slug: str = "", kind: str = "") -> QuerySet[Backup]:
    found = Backup.objects.all()
    if slug:
        found = found.filter(organization_slug=slug)
    if kind:
        found = found.filter(kind=kind)
    return found


def latest_backup_for(*, slug: str) -> Backup:
    backup = Backup.objects.filter(
        kind=Backup.Kind.TENANT, organization_slug=slug, outcome=Outcome.SUCCESS, pruned_at__isnull=True
    ).first()
    if backup is None:
        raise NotFound(f"Organisation {slug!r} has no usable backup.", code="backup_not_found")
    return backup


def latest_good_backups() -> list[dict[str, Any]]:
    """Per client (and ``main``): the newest successful backup's age and size."""
    now = timezone.now()
    seen: dict[str, dict[str, Any]] = {}
    rows = Backup.objects.filter(outcome=Outcome.SUCCESS, pruned_at__isnull=True).values(
        "kind", "organization_slug", "finished_at", "size_bytes"
    )
    for row in rows.order_by("-finished_at"):
        client = row["organization_slug"] if row["kind"] == Backup.Kind.TENANT else "main"
        if client not in seen and row["finished_at"] is not None:
            seen[client] = {
                "client": client,
                "age_seconds": (now - row["finished_at"]).total_seconds(),
                "size_bytes": row["size_bytes"],
            }
    return list(seen.values())


def recent_backup_failures() -> int:
    since = timezone.now() - dt.timedelta(days=1)
    return Backup.objects.filter(outcome=Outcome.FAILURE, started_at__gte=since).count()


def last_backup() -> Backup | None:
    return Backup.objects.exclude(outcome=Outcome.RUNNING).first()


def last_drill() -> DrillRun | None:
    return DrillRun.objects.exclude(outcome=Outcome.RUNNING).first()


def drill_counts() -> dict[str, int]:
    counts = dict(DrillRun.objects.values_list("outcome").annotate(n=Count("pk")).values_list("outcome", "n"))
    return {outcome: counts.get(outcome, 0) for outcome in (Outcome.SUCCESS, Outcome.FAILURE)}


def _oldest_age(queue: Any) -> float | None:
    job_ids = queue.get_job_ids(0, 0)
    if not job_ids:
        return None
    job = queue.fetch_job(job_ids[0])
    if job is None or job.enqueued_at is None:
        return None
    enqueued = job.enqueued_at if job.enqueued_at.tzinfo else job.enqueued_at.replace(tzinfo=dt.UTC)
    return max(0.0, (timezone.now() - enqueued).total_seconds())


def queue_states() -> dict[str, dict[str, Any]]:
    """Per RQ queue: depth, failed jobs, the oldest waiting job's age; ``error`` when Redis does not answer."""
    states: dict[str, dict[str, Any]] = {}
    for name in settings.RQ_QUEUES:
        try:
            queue = django_rq.get_queue(name)
            states[name] = {
                "depth": queue.count,
                "failed": FailedJobRegistry(queue=queue).count,
                "oldest_age_seconds": _oldest_age(queue),
                "error": "",
            }
        except RedisError as exc:
            states[name] = {"error": f"{type(exc).__name__}: {exc}"}
    return states


RECONCILER = "tenants.jobs.reconcile_job"


def last_reconciler_run() -> dt.datetime | None:
    """When the reconciler last finished, from RQ's finished-job registry (kept for the job's result TTL)."""
    queue = django_rq.get_queue("provisioning")
    registry = FinishedJobRegistry(queue=queue)
    newest: dt.datetime | None = None
    for job_id in registry.get_job_ids(-200, -1):
        job = queue.fetch_job(job_id)
        if job is None or job.func_name != RECONCILER or job.ended_at is None:
            continue
        ended = job.ended_at if job.ended_at.tzinfo else job.ended_at.replace(tzinfo=dt.UTC)
        newest = ended if newest is None or ended > newest else newest
    return newest
