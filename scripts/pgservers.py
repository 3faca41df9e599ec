#!/usr/bin/env python3
"""Throwaway PostgreSQL servers on given ports, for tests that need more than the machine's one server.

    python scripts/pgservers.py start 5441 5442 [--logical 5442] [--prefix gctest] [--json]
    python scripts/pgservers.py stop [PORT ...]     # stop and remove what this script started (all by default)
    python scripts/pgservers.py status [--json]

Where the machine has Debian's PostgreSQL (``pg_createcluster``), each server is a Debian cluster named
``<prefix><port>`` of the newest installed version; else an ``initdb``/``pg_ctl`` data directory under
``var/pgservers/`` with the ``pgserver`` wheel's PostgreSQL. Either way it listens on 127.0.0.1 only, trusts
local connections (user ``postgres``), is small (``shared_buffers``, ``max_connections``) and fast but unsafe
against a crash of the machine (``fsync = off``; a crash or immediate stop of the server itself loses nothing
committed); ``--logical`` ports get ``wal_level = logical`` (logical replication).

Exactly what was started is recorded in ``var/pgservers.json`` and only that is ever stopped and removed: the
machine's main cluster and its configuration are never touched. The pytest fixture (``tests/pgservers.py``)
removes its servers at the end of the session, and at interpreter exit when the session dies early; a stale
record left by a killed run is cleaned up by the next ``start`` on the same port, or by ``stop``.

``PGSERVERS_KIND=pgserver`` forces the pgserver fallback on a Debian machine. Only the standard library
is needed (pgserver only for the fallback), so CI can call it before the virtualenv exists.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

try:  # optional: the fallback where Debian's tools are missing
    with warnings.catch_warnings():  # pgserver's import asks platformdirs for a runtime dir it never uses
        warnings.simplefilter("ignore")
        from pgserver._commands import POSTGRES_BIN_PATH  # type: ignore[import-not-found]
        from pgserver.utils import ensure_prefix_permissions, ensure_user_exists  # type: ignore[import-not-found]
except ImportError:
    POSTGRES_BIN_PATH = None  # type: ignore[assignment]

ROOT = Path(__file__).resolve().parent.parent
STATE_FILE = ROOT / "var" / "pgservers.json"
PGSERVER_DATA = ROOT / "var" / "pgservers"
HOST = "127.0.0.1"
DEBIAN_CONF_DIR = Path("/etc/postgresql")
SETTINGS = {
    "listen_addresses": f"'{HOST}'",
    "shared_buffers": "16MB",
    "max_connections": "40",
    "fsync": "off",
    "full_page_writes": "off",
    "max_locks_per_transaction": "256",
}


class PgServersError(Exception):
    """A server could not be started, stopped or removed; the message says which and why."""


@dataclass
class PgServer:
    """One throwaway server. ``kind`` is ``debian`` (a ``pg_createcluster`` cluster) or ``pgserver``."""

    port: int
    kind: str
    name: str
    version: str
    data_dir: str
    logical: bool = False
    host: str = HOST
    run_as: str = field(default="")

    def url(self, dbname: str = "postgres") -> str:
        return f"postgres://postgres@{self.host}:{self.port}/{dbname}"

    def answers(self, timeout: float = 0.5) -> bool:
        with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), timeout=timeout):
            return True
        return False

    def halt(self, *, mode: str = "immediate") -> None:
        """Stop the server without removing it (``immediate``: as a crash would); ``resume`` starts it again."""
        if self.kind == "debian":
            _run(["pg_ctlcluster", "--skip-systemctl-redirect", self.version, self.name, "stop", "-m", mode])
        else:
            _run([str(_pgserver_bin() / "pg_ctl"), "-D", self.data_dir, "-m", mode, "-w", "stop"], user=self.run_as)
        _wait(lambda: not self.answers(), what=f"PostgreSQL on port {self.port} to stop")

    def resume(self) -> None:
        if self.kind == "debian":
            _run(["pg_ctlcluster", "--skip-systemctl-redirect", self.version, self.name, "start"])
        else:
            _pgserver_start(self)
        _wait(self.answers, what=f"PostgreSQL on port {self.port} to start")


# --- running commands ----------------------------------------------------------------------------------


def _run(command: Sequence[str], *, user: str = "") -> str:
    try:
        result = subprocess.run(  # noqa: S603 - our own fixed programs and arguments
            list(command), capture_output=True, text=True, check=False, user=user or None, timeout=120
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        message = f"{command[0]} failed: {exc}"
        raise PgServersError(message) from exc
    if result.returncode != 0:
        message = f"{' '.join(command[:3])} ... failed: {(result.stderr or result.stdout).strip()}"
        raise PgServersError(message)
    return result.stdout


def _wait(check: Callable[[], bool], *, what: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    message = f"timed out after {seconds:.0f} s waiting for {what}"
    raise PgServersError(message)


def _port_in_use(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
        return True
    return False


# --- Debian's clusters ---------------------------------------------------------------------------------


def debian_version() -> str | None:
    """The newest PostgreSQL version Debian's tools can make a cluster of, or None without them (or root)."""
    if os.environ.get("PGSERVERS_KIND") == "pgserver":  # force the fallback (to test it on a Debian machine)
        return None
    if shutil.which("pg_createcluster") is None or os.name != "posix" or os.geteuid() != 0:
        return None
    versions = sorted(
        (p.name for p in Path("/usr/lib/postgresql").glob("*") if (p / "bin" / "initdb").exists()),
        key=lambda v: [int(x) for x in v.split(".") if x.isdigit()],
    )
    return versions[-1] if versions else None


def _debian_clusters() -> set[tuple[str, str]]:
    out = _run(["pg_lsclusters", "--no-header"])
    return {(line.split()[0], line.split()[1]) for line in out.splitlines() if line.strip()}


def _debian_create(port: int, name: str, version: str, *, logical: bool) -> PgServer:
    _run(["pg_createcluster", version, name, "-p", str(port), "--", "--auth-local=trust", "--auth-host=trust"])
    conf = DEBIAN_CONF_DIR / version / name / "conf.d" / "ghostcrm-test.conf"
    conf.write_text(_settings_text(logical=logical))
    server = PgServer(port=port, kind="debian", name=name, version=version, logical=logical,
                      data_dir=f"/var/lib/postgresql/{version}/{name}")  # fmt: skip
    _record(server)  # before starting: a failed start is still removed by `stop`
    server.resume()
    return server


def _settings_text(*, logical: bool) -> str:
    values = {**SETTINGS, "wal_level": "logical" if logical else "replica"}
    return "# Written by scripts/pgservers.py for a throwaway test server.\n" + "".join(
        f"{key} = {value}\n" for key, value in values.items()
    )


# --- the pgserver wheel's PostgreSQL (no Debian tools) --------------------------------------------------


def _pgserver_bin() -> Path:
    if POSTGRES_BIN_PATH is None:
        message = "neither Debian's pg_createcluster nor the pgserver wheel is available"
        raise PgServersError(message)
    return Path(POSTGRES_BIN_PATH)


def _pgserver_user() -> str:
    """PostgreSQL refuses to run as root: as root, run it as a system user ``pgserver`` (created if missing)."""
    if os.name != "posix" or os.geteuid() != 0:
        return ""
    ensure_user_exists("pgserver")
    return "pgserver"


def _pgserver_create(port: int, name: str, *, logical: bool) -> PgServer:
    bin_dir = _pgserver_bin()
    data = PGSERVER_DATA / name
    if data.exists():
        shutil.rmtree(data)
    data.mkdir(parents=True)
    user = _pgserver_user()
    if user:
        ensure_prefix_permissions(data)
        entry = pwd.getpwnam(user)
        os.chown(data, entry.pw_uid, entry.pw_gid)
    data.chmod(0o700)
    _run([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--encoding=UTF8"], user=user)
    with (data / "postgresql.conf").open("a") as conf:
        conf.write(_settings_text(logical=logical) + f"port = {port}\nunix_socket_directories = '{data}'\n")
    version = (data / "PG_VERSION").read_text().strip()
    server = PgServer(port=port, kind="pgserver", name=name, version=version, data_dir=str(data), logical=logical,
                      run_as=user)  # fmt: skip
    _record(server)
    server.resume()
    return server


def _pgserver_start(server: PgServer) -> None:
    log = Path(server.data_dir) / "server.log"
    command = [str(_pgserver_bin() / "pg_ctl"), "-D", server.data_dir, "-l", str(log), "-w", "-t", "60", "start"]
    _run(command, user=server.run_as)


# --- the record of what was started ----------------------------------------------------------------------


def recorded() -> dict[int, PgServer]:
    if not STATE_FILE.exists():
        return {}
    return {int(port): PgServer(**data) for port, data in json.loads(STATE_FILE.read_text()).items()}


def _write(servers: dict[int, PgServer]) -> None:
    STATE_FILE.parent.mkdir(parents=True, exist_ok=True)
    STATE_FILE.write_text(json.dumps({str(p): asdict(s) for p, s in sorted(servers.items())}, indent=2) + "\n")


def _record(server: PgServer) -> None:
    servers = recorded()
    servers[server.port] = server
    _write(servers)


def _forget(port: int) -> None:
    servers = recorded()
    servers.pop(port, None)
    _write(servers)


# --- public API -------------------------------------------------------------------------------------------


def _refuse_busy(port: int) -> None:
    if _port_in_use(port):
        message = f"port {port} is in use by a server this script did not start; pick another"
        raise PgServersError(message)


def start_servers(
    ports: Iterable[int], *, logical: Iterable[int] = (), prefix: str = "gctest", remove_at_exit: bool = False
) -> list[PgServer]:
    """Start one new, empty server per port (removing a stale one this script recorded on that port first).

    Refuses a port where something else answers. ``remove_at_exit`` also registers their removal with
    ``atexit`` (for a test session that may die before its own clean-up runs).
    """
    logical_ports = set(logical)
    version = debian_version()
    started: list[PgServer] = []
    try:
        for port in ports:
            stale = recorded().get(port)
            if stale is not None:
                remove_servers([stale])
            name = f"{prefix}{port}"
            if version is not None and (version, name) in _debian_clusters():
                # Ours by name, left by a run whose record is gone (a killed CI job in another checkout).
                _run(["pg_dropcluster", "--stop", version, name])
            _refuse_busy(port)
            if version is not None:
                server = _debian_create(port, name, version, logical=port in logical_ports)
            else:
                server = _pgserver_create(port, name, logical=port in logical_ports)
            started.append(server)
    except BaseException:
        remove_servers(started)
        raise
    if remove_at_exit:
        atexit.register(remove_servers, started)
    return started


def remove_servers(servers: Iterable[PgServer]) -> list[str]:
    """Stop and remove each server (only ones this script recorded); returns what it removed. Idempotent."""
    removed = []
    mine = recorded()
    for server in list(servers):
        if server.port not in mine or mine[server.port].name != server.name:
            continue  # never ours, or already removed
        if server.kind == "debian":
            if (server.version, server.name) in _debian_clusters():
                _run(["pg_dropcluster", "--stop", server.version, server.name])
        else:
            if server.answers():
                with contextlib.suppress(PgServersError):
                    server.halt(mode="fast")
            shutil.rmtree(server.data_dir, ignore_errors=True)
        _forget(server.port)
        removed.append(f"{server.name} (port {server.port})")
    return removed


# --- command line ------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start", help="start new servers on these ports")
    start.add_argument("ports", nargs="+", type=int)
    start.add_argument("--logical", type=int, action="append", default=[], help="a port that gets wal_level=logical")
    start.add_argument("--prefix", default="gctest", help="cluster name prefix (the port is appended)")
    start.add_argument("--json", action="store_true")
    stop = commands.add_parser("stop", help="stop and remove servers this script started")
    stop.add_argument("ports", nargs="*", type=int, help="default: all it started")
    status = commands.add_parser("status", help="list the servers this script started")
    status.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            servers = start_servers(args.ports, logical=args.logical, prefix=args.prefix)
            _print(servers, as_json=args.json)
        elif args.command == "stop":
            mine = recorded()
            chosen = [mine[p] for p in (args.ports or mine) if p in mine]
            for line in remove_servers(chosen):
                print(f"removed {line}")
        else:
            _print(list(recorded().values()), as_json=args.json)
    except PgServersError as exc:
        print(f"pgservers: {exc}", file=sys.stderr)
        return 1
    return 0


def _print(servers: list[PgServer], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps([{**asdict(s), "url": s.url(), "up": s.answers()} for s in servers], indent=2))
        return
    for s in servers:
        state = "up" if s.answers() else "down"
        wal = "logical" if s.logical else "replica"
        print(f"{s.name}\t{s.kind} {s.version}\t{s.url()}\twal_level={wal}\t{state}")


if __name__ == "__main__":
    sys.exit(main())
