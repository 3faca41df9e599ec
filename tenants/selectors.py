"""Reads for organisations, their operations and the provisioning dashboard."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

import django_rq
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Count, QuerySet
from django.utils import timezone
from redis.exceptions import RedisError
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

from ghostcrm.core.errors import NotFound, ValidationError
from ghostcrm.organizations.models import Organization
from tenants import plans
from tenants.models import Operation

Status = Organization.Status


def organization_get(*, organization_id: uuid.UUID | str) -> Organization:
    try:
        return Organization.objects.get(pk=organization_id)
    except (Organization.DoesNotExist, DjangoValidationError, ValueError):
        raise NotFound(f"There is no organisation with id {organization_id}.", code="organization_not_found") from None


def organization_list(*, status: str | None = None) -> QuerySet[Organization]:
    queryset = Organization.objects.order_by("-created_at")
    if status:
        if status not in Status.values:
            raise ValidationError(
                f"{status!r} is not a status; use one of {', '.join(Status.values)}.",
                extra={"fields": {"status": [f"Use one of {', '.join(Status.values)}."]}},
            )
        queryset = queryset.filter(status=status)
    return queryset


def active_plan_choices() -> list[tuple[str, str]]:
    """The billing plans a new organisation may be given: ``(code, "Name (code)")`` of active plans, by code."""
    return plans.active_plan_choices()


def live_plan_names(*, organization_ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    """Each organisation's live subscription's plan name (from billing); organisations without one are left out."""
    return plans.live_plan_names(organization_ids)


def operation_get(*, operation_id: int | str) -> Operation:
    try:
        return Operation.objects.select_related("organization").get(pk=int(operation_id))
    except (Operation.DoesNotExist, ValueError):
        raise NotFound(f"There is no operation with id {operation_id}.", code="operation_not_found") from None


def organization_operations(*, organization: Organization) -> QuerySet[Operation]:
    return Operation.objects.filter(organization=organization).order_by("started_at", "id")


def percentile(values: list[float], fraction: float) -> float | None:
    """The ``fraction`` percentile by linear interpolation (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass
class DashboardStats:
    counts: dict[str, int]
    activated_last_day: int
    p50_seconds: float | None
    p95_seconds: float | None
    hourly: list[dict[str, Any]] = field(default_factory=list)
    recent_failures: list[Organization] = field(default_factory=list)
    queue: dict[str, Any] = field(default_factory=dict)


def provisioning_dashboard(*, now: dt.datetime | None = None) -> DashboardStats:
    """Counts per state, time to active over the last day (overall and per hour), failures, queue state.

    The hours are rolling: 24 one-hour buckets ``[start, end)`` counted back from ``now`` (the last one also
    takes an activation at ``now`` itself), in UTC, so together they cover exactly the overall figures' day.
    """
    now = (now or timezone.now()).astimezone(dt.UTC)
    since = now - dt.timedelta(days=1)
    counts = {status: 0 for status in Status.values}
    for row in Organization.objects.values("status").annotate(n=Count("id")):
        counts[row["status"]] = row["n"]
    activated: list[tuple[dt.datetime, dt.datetime]] = [
        (created, active)
        for created, active in Organization.objects.filter(activated_at__gte=since, activated_at__lte=now).values_list(
            "created_at", "activated_at"
        )
        if created is not None and active is not None
    ]
    durations = [(active - created).total_seconds() for created, active in activated]
    hourly = []
    for hour in range(24):
        start = since + dt.timedelta(hours=hour)
        end = start + dt.timedelta(hours=1)
        bucket = [(a - c).total_seconds() for c, a in activated if start <= a < end or (hour == 23 and a == now)]
        hourly.append(
            {
                "start": start,
                "end": end,
                "count": len(bucket),
                "p50": percentile(bucket, 0.5),
                "p95": percentile(bucket, 0.95),
            }
        )
    failures = list(Organization.objects.filter(status=Status.FAILED).order_by("-status_changed_at")[:10])
    return DashboardStats(
        counts=counts,
        activated_last_day=len(durations),
        p50_seconds=percentile(durations, 0.5),
        p95_seconds=percentile(durations, 0.95),
        hourly=hourly,
        recent_failures=failures,
        queue=queue_state(),
    )


def queue_state() -> dict[str, Any]:
    """Depth and registries of the provisioning queue; ``error`` when Redis cannot be reached."""
    try:
        queue = django_rq.get_queue("provisioning")
        return {
            "queued": queue.count,
            "started": StartedJobRegistry(queue=queue).count,
            "scheduled": ScheduledJobRegistry(queue=queue).count,
            "failed": FailedJobRegistry(queue=queue).count,
            "error": "",
        }
    except RedisError as exc:
        return {"queued": None, "started": None, "scheduled": None, "failed": None, "error": str(exc)}
