"""Readiness: can this control plane do its work now? Each part is checked and named when it fails."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from typing import Any

import psycopg
import redis
from django.conf import settings
from django.db import DatabaseError, connections
from django.utils import timezone
from redis.exceptions import RedisError

from ghostcrm.core.system_settings import setting_value
from operations import selectors
from operations.models import Outcome

Check = dict[str, Any]


def _main_database() -> Check:
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        return {"ok": False, "detail": f"{type(exc).__name__}: {exc}".strip()[:300]}
    return {"ok": True, "detail": connections["default"].vendor}


def _tenant_server(params: dict[str, Any]) -> Check:
    try:
        with psycopg.connect(
            host=params.get("HOST") or None,
            port=params.get("PORT") or 5432,
            user=params.get("USER") or None,
            password=params.get("PASSWORD") or None,
            dbname=params["NAME"],
            connect_timeout=3,
            application_name="ghostcrm-readyz",
        ) as conn:
            version = conn.execute("SHOW server_version").fetchone()
    except psycopg.Error as exc:
        return {"ok": False, "detail": str(exc).strip().splitlines()[0][:300] if str(exc).strip() else "unreachable"}
    return {"ok": True, "detail": f"PostgreSQL {version[0] if version else '?'}"}


def _redis() -> Check:
    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2).ping()
    except RedisError as exc:
        return {"ok": False, "detail": f"{type(exc).__name__}: {exc}"[:300]}
    return {"ok": True, "detail": "answers PING"}


def _queues() -> Check:
    states = selectors.queue_states()
    errors = [f"{name}: {s['error']}" for name, s in states.items() if s.get("error")]
    if errors:
        return {"ok": False, "detail": "; ".join(errors)[:300], "queues": states}
    depth_max = int(setting_value("readiness.queue_depth_max"))
    age_max = int(setting_value("readiness.oldest_job_max_seconds"))
    problems = [
        f"{name}: {s['depth']} jobs waiting (max {depth_max})" for name, s in states.items() if s["depth"] > depth_max
    ] + [
        f"{name}: oldest job waited {s['oldest_age_seconds']:.0f}s (max {age_max}s)"
        for name, s in states.items()
        if (s["oldest_age_seconds"] or 0) > age_max
    ]
    return {"ok": not problems, "detail": "; ".join(problems) or "within limits", "queues": states}


def _reconciler() -> Check:
    try:
        last = selectors.last_reconciler_run()
    except RedisError as exc:
        return {"ok": False, "detail": f"cannot read RQ's registry: {exc}"[:300]}
    limit = int(setting_value("readiness.reconciler_max_age_seconds"))
    if last is None:
        return {"ok": False, "detail": f"no reconciler run in RQ's finished registry (runs every 60 s; max {limit}s)"}
    age = (timezone.now() - last).total_seconds()
    return {"ok": age <= limit, "detail": f"last run {age:.0f}s ago (max {limit}s)", "last_run": last}


def _backups() -> Check:
    last = selectors.last_backup()
    if last is None:
        return {"ok": True, "detail": "no backup taken yet"}
    newest = selectors.latest_good_backups()
    max_age = dt.timedelta(hours=int(setting_value("backups.max_age_hours"))).total_seconds()
    stale = sorted(row["client"] for row in newest if row["age_seconds"] > max_age)
    ok = last.outcome == Outcome.SUCCESS and not stale
    detail = f"last backup #{last.pk} {last.outcome}" + (f" ({last.error[:150]})" if last.error else "")
    if stale:
        detail += f"; older than {max_age / 3600:.0f} h: {', '.join(stale[:10])}"
    return {"ok": ok, "detail": detail, "last_backup": last.pk}


def _drill() -> Check:
    drill = selectors.last_drill()
    if drill is None:
        return {"ok": True, "detail": "no restore drill run yet"}
    return {
        "ok": drill.outcome == Outcome.SUCCESS,
        "detail": f"drill #{drill.pk} {drill.outcome}: {drill.checked} checked, {drill.failed} failed",
    }


def readiness() -> dict[str, Any]:
    """Every check with ``ok`` and a ``detail``; ``failing`` names the parts that are not ready."""
    servers = selectors.tenant_servers()
    checks: dict[str, Callable[[], Check]] = {
        "main_database": _main_database,
        **{f"tenant_server:{name}": functools.partial(_tenant_server, params) for name, params in servers.items()},
        "redis": _redis,
        "queues": _queues,
        "reconciler": _reconciler,
        "backups": _backups,
        "restore_drill": _drill,
    }
    results = {name: check() for name, check in checks.items()}
    failing = [name for name, result in results.items() if not result["ok"]]
    return {"status": "fail" if failing else "ok", "failing": failing, "checks": results}
