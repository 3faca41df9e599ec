"""gunicorn configuration for the GhostCRM control plane (``make serve``; docs/operations.md).

Every value can be moved by an environment variable, so the same file serves a laptop, a VM and a container.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from prometheus_client import multiprocess

wsgi_app = "ghostcrm.wsgi:application"
bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# Sync workers: one request at a time each, so each worker holds at most one connection per database
# (CONN_MAX_AGE keeps it between requests; workers x databases is the connection budget).
workers = int(os.environ.get("GUNICORN_WORKERS", str(min(2 * (os.cpu_count() or 1) + 1, 8))))
worker_class = "sync"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "120"))  # a synchronous restore through the API can take a while
graceful_timeout = 30
keepalive = 5
# Recycle workers now and then: bounded memory growth (PostgreSQL relation caches live in the server, but
# Python's own caches grow with the number of tenants seen).
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "2000"))
max_requests_jitter = 200
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-")
errorlog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms rid=%({x-request-id}o)s "%(a)s"'
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")

# Prometheus multiprocess mode: each worker writes its counters to files here; /metrics sums them.
# Set before any worker imports prometheus_client (workers are forked from this master).
PROMETHEUS_DIR = Path(
    os.environ.setdefault(
        "PROMETHEUS_MULTIPROC_DIR", str(Path(tempfile.gettempdir()) / f"ghostcrm-prometheus-{os.getpid()}")
    )
)


def on_starting(server: Any) -> None:
    """A fresh metrics folder per master: stale files of a previous run would be summed in."""
    shutil.rmtree(PROMETHEUS_DIR, ignore_errors=True)
    PROMETHEUS_DIR.mkdir(parents=True, exist_ok=True)


def child_exit(server: Any, worker: Any) -> None:
    multiprocess.mark_process_dead(worker.pid)
