"""Prometheus metrics.

Two kinds, so that several gunicorn workers and RQ workers are counted right:
- events seen by a web process (requests, latency, lockouts, refused API keys) are prometheus_client
  counters and histograms; under gunicorn they use the multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, set
  by ``deploy/gunicorn.conf.py``), which sums every worker's files at scrape time;
- state and what the RQ workers do (provisioning times and outcomes, clients per status and server, queue
  depth, backups, drills) is read from the main database and Redis at scrape time by ``StateCollector``,
  so no worker needs an exporter of its own and a restarted process loses nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from django.db.models import Count
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from ghostcrm.organizations.models import Organization
from operations import selectors
from tenants.models import Operation

REQUESTS = Counter("ghostcrm_http_requests", "HTTP requests by view, method and status.", ["view", "method", "status"])
LATENCY = Histogram(
    "ghostcrm_http_request_duration_seconds",
    "HTTP request latency by view.",
    ["view"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
LOCKOUTS = Counter("ghostcrm_sign_in_lockouts", "Sign-in lockouts (django-axes).")
REFUSED_API_KEYS = Counter("ghostcrm_api_key_refusals", "API requests refused for a missing, bad or expired key.")
PROVISIONING_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900)


def observe_request(*, view: str, method: str, status: int, seconds: float) -> None:
    REQUESTS.labels(view=view, method=method, status=str(status)).inc()
    LATENCY.labels(view=view).observe(seconds)
    if status == 401 and view.startswith("api:"):
        REFUSED_API_KEYS.inc()


def lockout_observed(**kwargs: Any) -> None:
    LOCKOUTS.inc()


def _provisioning(families: list[Metric]) -> None:
    outcomes = CounterMetricFamily(
        "ghostcrm_provisionings", "Provisionings finished, by outcome (activation or failure).", labels=["outcome"]
    )
    outcomes.add_metric(["active"], Organization.objects.filter(activated_at__isnull=False).count())
    outcomes.add_metric(
        ["failed"], Operation.objects.filter(to_status=Organization.Status.FAILED, from_status="provisioning").count()
    )
    families.append(outcomes)
    durations = [
        (activated - created).total_seconds()
        for created, activated in Organization.objects.filter(activated_at__isnull=False).values_list(
            "created_at", "activated_at"
        )
        if activated is not None
    ]
    buckets = [(str(bound), sum(1 for d in durations if d <= bound)) for bound in PROVISIONING_BUCKETS]
    histogram = HistogramMetricFamily(
        "ghostcrm_provisioning_seconds", "Time from request to active, per provisioned client."
    )
    histogram.add_metric([], [*buckets, ("+Inf", len(durations))], sum_value=sum(durations))
    families.append(histogram)


def _clients(families: list[Metric]) -> None:
    per_status = GaugeMetricFamily("ghostcrm_clients", "Client organisations by status.", labels=["status"])
    counts = dict(Organization.objects.values_list("status").annotate(n=Count("pk")).values_list("status", "n"))
    for status in Organization.Status.values:
        per_status.add_metric([status], counts.get(status, 0))
    families.append(per_status)
    per_server = GaugeMetricFamily("ghostcrm_clients_per_server", "Live client schemas per server.", labels=["server"])
    for server, count in selectors.clients_per_server().items():
        per_server.add_metric([server], count)
    families.append(per_server)


def _queues(families: list[Metric]) -> None:
    depth = GaugeMetricFamily("ghostcrm_queue_depth", "Jobs waiting per RQ queue.", labels=["queue"])
    failed = GaugeMetricFamily("ghostcrm_queue_failed_jobs", "Jobs in the failed registry per queue.", labels=["queue"])
    oldest = GaugeMetricFamily(
        "ghostcrm_queue_oldest_job_age_seconds", "Age of the oldest waiting job.", labels=["queue"]
    )
    up = GaugeMetricFamily("ghostcrm_redis_up", "1 when Redis answered this scrape.")
    states = selectors.queue_states()
    up.add_metric([], 0 if any(s.get("error") for s in states.values()) else 1)
    for name, state in states.items():
        if state.get("error"):
            continue
        depth.add_metric([name], state["depth"])
        failed.add_metric([name], state["failed"])
        oldest.add_metric([name], state["oldest_age_seconds"] or 0)
    families += [depth, failed, oldest, up]


def _backups(families: list[Metric]) -> None:
    age = GaugeMetricFamily("ghostcrm_backup_age_seconds", "Age of the newest good backup.", labels=["client"])
    size = GaugeMetricFamily("ghostcrm_backup_size_bytes", "Size of the newest good backup.", labels=["client"])
    for row in selectors.latest_good_backups():
        label = row["client"]
        age.add_metric([label], row["age_seconds"])
        size.add_metric([label], row["size_bytes"] or 0)
    failures = GaugeMetricFamily("ghostcrm_backup_failures_last_day", "Backups that failed in the last 24 h.")
    failures.add_metric([], selectors.recent_backup_failures())
    drills = CounterMetricFamily("ghostcrm_restore_drills", "Restore drills run, by outcome.", labels=["outcome"])
    for outcome, count in selectors.drill_counts().items():
        drills.add_metric([outcome], count)
    last = GaugeMetricFamily("ghostcrm_restore_drill_last_success", "1 when the last restore drill passed.")
    drill = selectors.last_drill()
    last.add_metric([], 1 if drill is not None and drill.outcome == "success" else 0)
    families += [age, size, failures, drills, last]


class StateCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        families: list[Metric] = []
        for part in (_provisioning, _clients, _queues, _backups):
            part(families)
        yield from families


def exposition() -> bytes:
    """The Prometheus text for a scrape: every process's events, then the state read now."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        events = generate_latest(registry)
    else:
        events = generate_latest(REGISTRY)
    state = CollectorRegistry(auto_describe=False)
    state.register(StateCollector())
    return events + generate_latest(state)
