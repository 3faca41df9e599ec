"""Reaching a tenant database server: its URL, one short-timeout probe, and the checks a new server must pass.

A probe is one connection and one query; it never changes anything on the server. The checks are plain
functions of the probe's answers, so each can be tested with any input (a server too old to find here).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import psycopg

from ghostcrm.core.errors import ApplicationError, TransientError, ValidationError

MIN_SERVER_VERSION = 140000  # PostgreSQL 14, the oldest release a tenant server may run
CONNECT_TIMEOUT_SECONDS = 3
DEFAULT_PORT = 5432

PROBE_SQL = """
SELECT current_setting('server_version_num')::int,
       current_setting('server_version'),
       current_setting('wal_level'),
       current_setting('max_connections')::int,
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int,
       pg_database_size(current_database()),
       r.rolsuper,
       r.rolcreaterole,
       has_database_privilege(current_database(), 'CREATE')
FROM pg_roles r WHERE r.rolname = current_user
"""


class ServerUnreachable(TransientError):
    code = "server_unreachable"


class ServerCheckFailed(ApplicationError):
    """The server answers but cannot take clients (too old, or the login lacks a privilege)."""

    code = "server_check_failed"
    http_status = 422


@dataclass(frozen=True)
class ServerAddress:
    host: str
    port: int
    dbname: str
    user: str
    password: str | None
    query: str = ""

    @property
    def url(self) -> str:
        """The URL without its password: what the registry stores and shows."""
        netloc = f"{quote(self.user, safe='')}@{self.host}:{self.port}"
        return urlunsplit(("postgres", netloc, "/" + quote(self.dbname, safe=""), self.query, ""))

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    def conninfo(self) -> dict[str, Any]:
        info: dict[str, Any] = {"conninfo": self.url, "connect_timeout": CONNECT_TIMEOUT_SECONDS}
        if self.password:
            info["password"] = self.password
        return info


def parse_server_url(url: str, *, password: str | None = None) -> ServerAddress:
    """``postgres://user[:password]@host[:port]/database[?options]``; ``password`` wins over one in the URL."""
    parts = urlsplit(url.strip())
    if parts.scheme not in {"postgres", "postgresql"}:
        raise ValidationError(f"A server URL starts with postgres:// (got {parts.scheme or 'no scheme'}).")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise ValidationError("The server URL has an invalid port; use a number such as 5432.") from None
    dbname = unquote(parts.path.lstrip("/"))
    if not parts.hostname or not dbname or not parts.username:
        raise ValidationError(
            "A server URL names a login, a host and a database: postgres://user:password@host:5432/database."
        )
    return ServerAddress(
        host=parts.hostname,
        port=port,
        dbname=dbname,
        user=unquote(parts.username),
        password=password or (unquote(parts.password) if parts.password else None),
        query=parts.query,
    )


@dataclass(frozen=True)
class ServerProbe:
    version_num: int
    version: str
    wal_level: str
    max_connections: int
    connections_in_use: int
    size_bytes: int
    is_superuser: bool
    can_create_role: bool
    can_create_schema: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def server_probe(address: ServerAddress) -> ServerProbe:
    """One connection with a short timeout, one query. Raises ``ServerUnreachable`` with a sentence."""
    try:
        with psycopg.connect(**address.conninfo(), autocommit=True) as conn:
            row = conn.execute(PROBE_SQL).fetchone()
    except psycopg.Error as exc:
        # psycopg's first line names the cause ("Connection refused", "password authentication failed").
        lines = str(exc).strip().splitlines()
        reason = lines[0].removeprefix("connection failed: ").strip().rstrip(".") if lines else type(exc).__name__
        raise ServerUnreachable(
            f"The server at {address.where} (database {address.dbname}, login {address.user}) does not answer: "
            f"{reason}."
        ) from None
    if row is None:  # the login's own role is always in pg_roles; guard the type
        raise ServerCheckFailed(f"The server at {address.where} did not report the login {address.user}.")
    return ServerProbe(*row)


def check_version(version_num: int, *, where: str) -> None:
    if version_num < MIN_SERVER_VERSION:
        major = version_num // 10000
        raise ServerCheckFailed(
            f"The server at {where} runs PostgreSQL {major}; tenant servers need PostgreSQL 14 or later."
        )


def check_privileges(probe: ServerProbe, *, address: ServerAddress) -> None:
    if not (probe.is_superuser or probe.can_create_role):
        raise ServerCheckFailed(
            f"The login {address.user} on {address.where} may not create roles; give it CREATEROLE "
            f"(ALTER ROLE {address.user} CREATEROLE) or use a superuser."
        )
    if not (probe.is_superuser or probe.can_create_schema):
        raise ServerCheckFailed(
            f"The login {address.user} may not create schemas in database {address.dbname} on {address.where}; "
            f"GRANT CREATE ON DATABASE {address.dbname} TO {address.user}."
        )


def wal_warning(probe: ServerProbe, *, where: str) -> str:
    """Not a refusal: only online moves need logical replication."""
    if probe.wal_level == "logical":
        return ""
    return (
        f"The server at {where} has wal_level={probe.wal_level}: clients can move off it offline only "
        "(online moves need wal_level=logical)."
    )


def server_verify(address: ServerAddress) -> ServerProbe:
    """Every check a server must pass to be registered; the first failure raises one sentence."""
    probe = server_probe(address)
    check_version(probe.version_num, where=address.where)
    check_privileges(probe, address=address)
    return probe
