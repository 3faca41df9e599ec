"""The embedded servers `make demo` starts when nothing answers at the configured addresses."""

from __future__ import annotations

import importlib.util
import socket
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg
import pytest
import redis

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location("ghostcrm_demo_script", ROOT / "scripts" / "demo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "VAR", tmp_path / "var")
    return module


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_embedded_redis_starts_on_the_configured_address_and_stops(demo: ModuleType) -> None:
    port = free_port()
    embedded = demo.Embedded()
    assert not demo.answers("127.0.0.1", port)
    demo.ensure_redis(f"redis://127.0.0.1:{port}/0", embedded)
    try:
        client = redis.Redis(host="127.0.0.1", port=port)
        assert client.ping()
        client.set("demo", "1")
    finally:
        embedded.stop_all()
    assert not demo.answers("127.0.0.1", port)


def test_embedded_postgres_starts_creates_the_database_and_stops(demo: ModuleType) -> None:
    port = free_port()
    embedded = demo.Embedded()
    target = demo.PostgresTarget("TENANT_DATABASE_URL", "127.0.0.1", port, "postgres", "", "ghostcrm_demo_probe")
    demo.ensure_postgres([target], embedded)
    try:
        demo.ensure_databases([target])
        demo.ensure_databases([target])  # a second run finds it
        with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="ghostcrm_demo_probe") as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("ghostcrm_demo_probe",)
            assert conn.execute("SHOW max_locks_per_transaction").fetchone() == ("256",)
    finally:
        embedded.stop_all()
    assert not demo.answers("127.0.0.1", port)


def test_a_remote_address_that_does_not_answer_is_a_sentence_not_an_embedded_server(demo: ModuleType) -> None:
    embedded = demo.Embedded()
    with pytest.raises(demo.DemoError, match=r"nothing answers at 192\.0\.2\.1:6379 \(REDIS_URL\)"):
        demo.ensure_redis("redis://192.0.2.1:6379/0", embedded)
    target = demo.PostgresTarget("MAIN_DATABASE_URL", "192.0.2.1", 5432, "postgres", "", "main")
    with pytest.raises(demo.DemoError, match=r"point MAIN_DATABASE_URL at 127\.0\.0\.1"):
        demo.ensure_postgres([target], embedded)
    assert embedded.stoppers == []


def test_services_mode_starts_what_does_not_answer_and_leaves_it_running(
    demo: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`make test` on a machine without Redis or PostgreSQL installed: `demo.py --services URL...`."""
    started: list[Any] = []

    class Recorded(demo.Embedded):  # type: ignore[name-defined,misc]
        def __init__(self) -> None:
            super().__init__()
            started.append(self)

    monkeypatch.setattr(demo, "Embedded", Recorded)
    port = free_port()
    try:
        assert demo.services_only([f"redis://127.0.0.1:{port}/15"]) == 0
        assert redis.Redis(host="127.0.0.1", port=port).ping()  # still running after the call returned
    finally:
        for embedded in started:
            embedded.stop_all()
    assert not demo.answers("127.0.0.1", port)
    with pytest.raises(demo.DemoError, match="neither a postgres:// nor a redis:// address"):
        demo.services_only(["mysql://127.0.0.1/x"])


def test_client_tools_come_from_pgserver_only_when_the_machine_has_none(
    demo: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/usr/bin")
    monkeypatch.setattr(demo.shutil, "which", lambda name: f"/usr/bin/{name}")
    assert demo.client_tools_path() == "/usr/bin"  # the machine's pg_dump matches its server: kept alone
    monkeypatch.setattr(demo.shutil, "which", lambda name: None)
    path = demo.client_tools_path()
    first, added = path.split(":")
    assert first == "/usr/bin" and (Path(added) / "pg_dump").is_file() and (Path(added) / "psql").is_file()
