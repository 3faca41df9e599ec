"""The session's extra PostgreSQL servers (scripts/pgservers.py): real, separate, configured as asked, stoppable
and restartable, and recorded so that exactly they are removed."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import psycopg

from tests.pgservers import SCRIPT, configured_ports, load, name_prefix


def setting(server: Any, name: str) -> str:
    with psycopg.connect(server.url(), autocommit=True) as conn:
        return str(conn.execute("SELECT current_setting(%s)", [name]).fetchone()[0])


def test_extra_servers_answer_with_the_settings_asked_for(extra_pg_servers: list[Any]) -> None:
    assert [s.port for s in extra_pg_servers] == configured_ports()
    assert len(extra_pg_servers) >= 2
    first, *others = extra_pg_servers
    assert setting(first, "wal_level") == "replica"
    assert all(setting(s, "wal_level") == "logical" for s in others)
    for server in extra_pg_servers:
        assert server.name == f"{name_prefix()}{server.port}"
        assert setting(server, "listen_addresses") == "127.0.0.1"
        assert int(setting(server, "max_connections")) <= 40
        assert int(setting(server, "server_version_num")) >= 140000
        with psycopg.connect(server.url(), autocommit=True) as conn:  # trust on 127.0.0.1, as postgres
            assert conn.execute("SELECT current_user").fetchone()[0] == "postgres"
    recorded = load().recorded()
    assert {s.port: s.name for s in extra_pg_servers}.items() <= {p: s.name for p, s in recorded.items()}.items()


def test_an_extra_server_stops_and_starts_again_keeping_its_data(extra_pg_servers: list[Any]) -> None:
    server = extra_pg_servers[-1]
    with psycopg.connect(server.url(), autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS kept; CREATE TABLE kept AS SELECT 42 AS answer")
    server.halt()
    assert not server.answers()
    try:
        psycopg.connect(server.url(), connect_timeout=2).close()
        reached = True
    except psycopg.OperationalError:
        reached = False
    assert not reached
    server.resume()
    with psycopg.connect(server.url(), autocommit=True) as conn:
        assert conn.execute("SELECT answer FROM kept").fetchone()[0] == 42
        conn.execute("DROP TABLE kept")


def test_the_command_line_lists_what_it_started(extra_pg_servers: list[Any]) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "status", "--json"], capture_output=True, text=True, check=True
    )
    listed = {entry["port"]: entry for entry in json.loads(result.stdout)}
    for server in extra_pg_servers:
        assert listed[server.port]["up"] is True
        assert listed[server.port]["url"] == server.url()
