"""What every workload of `python -m bench` shares: the bench's own databases, role prefix and Redis db,
`manage.py` run as a subprocess (the product's stable entry points), psql, and timing statistics.

The bench creates its databases (names carry ``bench``) and drops them at the end, with the tenant roles
its role prefix made. psql helpers come from bench/engine_bench.py.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import redis

from bench.engine_bench import _psql_env, _url_with_db

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "migrations_sql" / "client-provisioning"
PG_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")


class BenchError(RuntimeError):
    """A step of a workload did not do what it should (a command failed, a client did not become active)."""

    def __init__(self, step: str, detail: str) -> None:
        super().__init__(f"{step}: {detail}")


@dataclass
class Stack:
    """One product installation: its main and tenant databases, role prefix and Redis db."""

    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:6])

    @property
    def main_db(self) -> str:
        return f"ghostcrm_bench_main_{self.run_id}"

    @property
    def tenant_db(self) -> str:
        return f"ghostcrm_bench_tenants_{self.run_id}"

    @property
    def role_prefix(self) -> str:
        return f"gcbench{self.run_id}"

    @property
    def tenant_url(self) -> str:
        return _url_with_db(PG_URL, self.tenant_db)

    @property
    def main_url(self) -> str:
        return _url_with_db(PG_URL, self.main_db)

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "MAIN_DATABASE_URL": self.main_url,
            "TENANT_DATABASE_URL": self.tenant_url,
            "TENANT_ROLE_PREFIX": self.role_prefix,
            "REDIS_URL": REDIS_URL,
            "GHOSTCRM_ENV": os.environ.get("GHOSTCRM_ENV", "development"),
            "DJANGO_SETTINGS_MODULE": "ghostcrm.settings",
        }

    def manage(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(  # noqa: S603
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env(), capture_output=True, text=True
        )
        if check and proc.returncode != 0:
            detail = f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
            raise BenchError("manage.py " + " ".join(args), detail)
        return proc

    def manage_json(self, *args: str) -> Any:
        return json.loads(self.manage(*args).stdout)

    def popen(self, *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(  # noqa: S603
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def popen_env(self, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(  # noqa: S603
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def tenant_conn(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.tenant_url, autocommit=True)

    def main_conn(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.main_url, autocommit=True)

    def psql_env(self, **extra: str) -> dict[str, str]:
        return {**_psql_env(self.tenant_url), **extra}


def admin_conn() -> psycopg.Connection[Any]:
    return psycopg.connect(PG_URL, autocommit=True)


def redis_flush_bench_db() -> None:
    redis.Redis.from_url(REDIS_URL).flushdb()


@contextmanager
def stack() -> Iterator[Stack]:
    """A migrated product installation in new bench databases, dropped (with its roles) afterwards."""
    s = Stack()
    with admin_conn() as conn:
        conn.execute(f'CREATE DATABASE "{s.main_db}"')
        conn.execute(f'CREATE DATABASE "{s.tenant_db}"')
    try:
        redis_flush_bench_db()
        s.manage("migrate", "--no-input")
        yield s
    finally:
        drop_stack(s)


def drop_stack(s: Stack) -> None:
    with admin_conn() as conn:
        for db in (s.main_db, s.tenant_db):
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        roles = conn.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE %s", [s.role_prefix + "%"]).fetchall()
        for (role,) in roles:
            conn.execute(f'DROP ROLE "{role}"')
    redis_flush_bench_db()


def render_templates(*, owner_role: str, app_role: str, tenant_id: str, directory: Path = TEMPLATES) -> list[str]:
    """The templates' text with their documented placeholders filled in, in file order."""
    out = []
    for path in sorted(directory.glob("*.pgsql")):
        text = path.read_text()
        text = text.replace("${owner_role}", f'"{owner_role}"').replace("${app_role}", f'"{app_role}"')
        out.append(text.replace("${tenant_id}", f"'{tenant_id}'"))
    return out


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - started, result


def summary(samples: list[float]) -> dict[str, Any]:
    """Median and spread (min, max, and the relative spread (max - min) / median)."""
    med = statistics.median(samples)
    return {
        "median": med,
        "min": min(samples),
        "max": max(samples),
        "spread": (max(samples) - min(samples)) / med if med else 0.0,
        "samples": samples,
    }


def run_psql(sql_files: list[Path], env: dict[str, str], *, single: bool = True) -> float:
    cmd = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", *(["-1"] if single else [])]
    for f in sql_files:
        cmd += ["-f", str(f)]
    started = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)  # noqa: S603
    return time.perf_counter() - started
