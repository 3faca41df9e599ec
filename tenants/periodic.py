"""The cron configuration the worker's scheduler loads (``python manage.py rqcron tenants.periodic``).

The jobs come from ``settings.PERIODIC_JOBS`` (one line per job), so another area adds a periodic job there
without touching this module: ``{"func": "app.jobs.name", "queue": "default", "interval": 300}`` or
``"cron": "0 3 * * *"`` instead of ``interval``.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string
from rq import cron


def periodic_jobs() -> list[dict[str, Any]]:
    """``PERIODIC_JOBS`` checked and resolved: each with an importable ``func``, a known queue, one schedule."""
    resolved = []
    for entry in settings.PERIODIC_JOBS:
        path = str(entry.get("func", ""))
        queue = str(entry.get("queue", "default"))
        if queue not in settings.RQ_QUEUES:
            raise ImproperlyConfigured(f"PERIODIC_JOBS: {path} names the queue {queue!r}, which RQ_QUEUES lacks.")
        if ("interval" in entry) == ("cron" in entry):
            raise ImproperlyConfigured(f"PERIODIC_JOBS: give {path} either an interval (seconds) or a cron line.")
        try:
            func = import_string(path)
        except ImportError as exc:
            raise ImproperlyConfigured(f"PERIODIC_JOBS: cannot import {path}: {exc}") from exc
        resolved.append(
            {
                "func": func,
                "queue_name": queue,
                "interval": entry.get("interval"),
                "cron": entry.get("cron"),
                "job_timeout": entry.get("timeout"),
                "name": path,
            }
        )
    return resolved


for _job in periodic_jobs():
    cron.register(**_job)
