"""The app as a separate process (``manage.py runserver``) on this run's test databases, for tests that need a
real HTTP server: connection counts, schemathesis."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connections

ROOT = Path(__file__).resolve().parents[2]


def database_url(alias: str) -> str:
    config = connections[alias].settings_dict
    user = config.get("USER") or "postgres"
    password = f":{config['PASSWORD']}" if config.get("PASSWORD") else ""
    return (
        f"postgres://{user}{password}@{config.get('HOST') or '127.0.0.1'}:{config.get('PORT') or 5432}/{config['NAME']}"
    )


@contextmanager
def dev_server(port: int, **environment: str) -> Iterator[str]:
    """``runserver`` on 127.0.0.1:``port`` against the test databases (data must be committed: transactional tests);
    yields its base URL once it answers, and stops it (its connections with it) afterwards."""
    env = {
        **os.environ,
        "MAIN_DATABASE_URL": database_url("default"),
        "TENANT_DATABASE_URL": database_url(settings.TENANT_DB_ALIAS),
        "REDIS_URL": settings.REDIS_URL,
        "GHOSTCRM_ENV": "development",
        "DEBUG": "false",
        "PYTHONUNBUFFERED": "1",
        **environment,
    }
    (ROOT / "var").mkdir(exist_ok=True)
    log = (ROOT / "var" / f"devserver-{port}.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload", "--skip-checks"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(base, process)
        yield base
    finally:
        log.close()
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _wait_until_up(base: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"runserver exited with {process.returncode}; see var/devserver-*.log")
        try:
            urllib.request.urlopen(f"{base}/api/schema/", timeout=2).close()  # noqa: S310  (a local http URL)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
        else:
            return
    pytest.fail(f"runserver did not answer at {base} within 60 s")
