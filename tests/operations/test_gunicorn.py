"""gunicorn with deploy/gunicorn.conf.py serves the login page, static files (WhiteNoise), the API and /metrics."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connections

from tenants.keys import service_key_create
from tests.operations.conftest import ACTOR

PORT = 8172
BASE = f"http://127.0.0.1:{PORT}"
ROOT = Path(settings.BASE_DIR)


def database_url(alias: str) -> str:
    params = connections[alias].settings_dict
    user = params["USER"] or "postgres"
    password = f":{params['PASSWORD']}" if params["PASSWORD"] else ""
    return f"postgres://{user}{password}@{params['HOST'] or '127.0.0.1'}:{params['PORT'] or 5432}/{params['NAME']}"


def fetch(path: str, headers: dict[str, str] | None = None) -> tuple[int, str, dict[str, str]]:
    request = urllib.request.Request(BASE + path, headers=headers or {})  # noqa: S310 - loopback only
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback only
            return response.status, response.read().decode(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), dict(exc.headers)


def wait_until_up(process: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        assert process.poll() is None, "gunicorn exited early"
        try:
            if fetch("/healthz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError("gunicorn did not answer /healthz within 60 s")


@pytest.mark.django_db(databases=["default", "tenants"], transaction=True)
def test_gunicorn_serves_the_login_page_static_files_an_api_call_and_metrics_of_all_workers(
    tmp_path: Path, redis_conn: Any
) -> None:
    if connections["default"].vendor != "postgresql":
        pytest.skip("gunicorn runs in its own processes: the main test database must be a server (PostgreSQL)")
    _, raw_key = service_key_create(name="gunicorn test", scopes=["organizations:read"], actor=ACTOR)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "ghostcrm.settings_test",
        "MAIN_DATABASE_URL": database_url("default"),
        "TENANT_DATABASE_URL": database_url("tenants"),
        "REDIS_URL": settings.REDIS_URL,
        "GHOSTCRM_ENV": "development",
        "DEBUG": "false",
        "STATIC_ROOT": str(tmp_path / "static"),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),
        "GUNICORN_BIND": f"127.0.0.1:{PORT}",
        "GUNICORN_WORKERS": "2",
    }
    (tmp_path / "prometheus").mkdir()
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
        cwd=ROOT, env=env, check=True, timeout=120,
    )  # fmt: skip
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    log = (tmp_path / "gunicorn.log").open("wb")
    process = subprocess.Popen([gunicorn, "-c", "deploy/gunicorn.conf.py"], cwd=ROOT, env=env, stdout=log, stderr=log)
    try:
        wait_until_up(process, time.monotonic() + 60)
        status, body, headers = fetch("/accounts/login/")
        assert status == 200
        assert 'name="password"' in body
        assert headers["X-Request-ID"]
        css = re.search(r'href="(/static/[^"]+\.css)"', body)
        assert css, "the login page links a stylesheet"
        status, _, headers = fetch(css.group(1))
        assert status == 200
        assert "text/css" in headers["Content-Type"]

        status, body, _ = fetch("/api/v1/organizations/", {"Authorization": f"Bearer {raw_key}"})
        assert status == 200
        assert '"results"' in body
        assert fetch("/api/v1/organizations/")[0] == 401

        for _ in range(20):
            assert fetch("/healthz")[0] == 200
        status, text, _ = fetch("/metrics")
        assert status == 200
        counted = re.search(
            r'^ghostcrm_http_requests_total\{method="GET",status="200",view="operations:healthz"\} (\S+)$',
            text,
            re.MULTILINE,
        )
        # Both workers' files summed: every /healthz answered (20 here, plus the start-up polls) is counted.
        assert counted
        assert float(counted.group(1)) >= 21
        assert len(list((tmp_path / "prometheus").glob("*.db"))) >= 2
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
            log.close()
    output = (tmp_path / "gunicorn.log").read_text()
    assert "Booting worker" in output
    assert 'GET /accounts/login/ HTTP/1.1" 200' in output
