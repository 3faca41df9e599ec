"""The engine's own psycopg connections and the simple-query helpers.

Two logins, two connections (see docs/template-engine.md, "Who runs template SQL"):
- ``engine_connect``: the privileged login of ``TENANT_DATABASE_URL``. It creates and drops roles and schemas,
  grants the migrator an owner role for the time of an apply, and reads state. It never runs template text.
- ``migrator_connect``: the least-privileged migrator login (``NOSUPERUSER NOCREATEROLE NOCREATEDB
  NOINHERIT``). Template text runs only here, under ``SET LOCAL ROLE <owner>``; ``RESET ROLE`` in a template
  falls back to the migrator, which can do nothing but write the ledger rows of the schema it applies.

Both are dedicated connections in autocommit mode: the engine issues BEGIN and COMMIT itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from django.conf import settings
from django.db import connections
from psycopg import generators, pq, sql

from ghostcrm.core.errors import TransientError, ValidationError
from tenants.engine.naming import migrator_role

APPLICATION_NAME = "ghostcrm tenant_sql"
T = TypeVar("T")


class StatementFailed(Exception):
    """PostgreSQL rejected a statement of a simple query: the error and how many statements completed."""

    def __init__(self, error: psycopg.Error, completed: int) -> None:
        super().__init__(str(error))
        self.error = error
        self.completed = completed


def _connect(*, user: str | None, password: str | None) -> psycopg.Connection[Any]:
    params = connections[settings.TENANT_DB_ALIAS].settings_dict
    options = {
        k: v for k, v in (params.get("OPTIONS") or {}).items() if k in {"sslmode", "sslrootcert", "connect_timeout"}
    }
    try:
        return psycopg.connect(
            host=params.get("HOST") or None,
            port=params.get("PORT") or 5432,
            user=user,
            password=password,
            dbname=params["NAME"],
            autocommit=True,
            application_name=APPLICATION_NAME,
            **options,
        )
    except psycopg.OperationalError as exc:
        raise TransientError(f"Cannot connect to the tenant database as {user or 'default'}: {exc}".strip()) from exc


def engine_connect() -> psycopg.Connection[Any]:
    """A new connection as the privileged login of ``TENANT_DATABASE_URL`` (never runs template text)."""
    params = connections[settings.TENANT_DB_ALIAS].settings_dict
    return _connect(user=params.get("USER") or None, password=params.get("PASSWORD") or None)


def migrator_connect() -> psycopg.Connection[Any]:
    """A new connection as the migrator login, the only session that runs template text."""
    return _connect(user=migrator_role(), password=getattr(settings, "TENANT_MIGRATOR_PASSWORD", "") or None)


def simple(conn: psycopg.Connection[Any], text: str | sql.Composable) -> list[pq.abc.PGresult]:
    """Send ``text`` with the simple query protocol; return every statement's result.

    psycopg's cursor drops the results of the statements that completed before an error; we keep their
    count, which tells which statement of a file failed when PostgreSQL gives no error position.
    """
    query = text.as_bytes(conn) if isinstance(text, sql.Composable) else text.encode()
    pgconn = conn.pgconn
    with conn.lock:
        try:
            pgconn.send_query(query)
            results = conn.wait(generators.execute(pgconn))
        except psycopg.OperationalError:
            raise
        except psycopg.Error as exc:  # e.g. the connection went away while sending
            raise psycopg.OperationalError(str(exc)) from exc
    for completed, result in enumerate(results):
        if result.status == pq.ExecStatus.FATAL_ERROR:
            raise StatementFailed(psycopg.errors.error_from_result(result, encoding=conn.info.encoding), completed)
    return results


def value(result: pq.abc.PGresult) -> str | None:
    raw = result.get_value(0, 0)
    return None if raw is None else bytes(raw).decode()


def error_text(error: psycopg.Error) -> str:
    diag = error.diag
    parts = [diag.message_primary or str(error).strip()]
    if diag.message_detail:
        parts.append(f"DETAIL: {diag.message_detail}")
    if diag.message_hint:
        parts.append(f"HINT: {diag.message_hint}")
    if diag.context:
        parts.append(f"CONTEXT: {diag.context}")
    return "\n".join(parts)


def rollback_if_open(conn: psycopg.Connection[Any]) -> None:
    if not conn.closed and conn.pgconn.transaction_status in {
        pq.TransactionStatus.INTRANS,
        pq.TransactionStatus.INERROR,
    }:
        simple(conn, "ROLLBACK")


def run_write(action: str, func: Callable[[psycopg.Connection[Any]], T]) -> T:
    """Run ``func`` on a new privileged connection; PostgreSQL's errors become the error family."""
    conn = engine_connect()
    try:
        return func(conn)
    except StatementFailed as exc:
        raise ValidationError(f"{action} failed: {error_text(exc.error)}", code="tenant_sql_failed") from exc
    except psycopg.OperationalError as exc:
        raise TransientError(f"{action} failed, the tenant database connection was lost: {exc}".strip()) from exc
    finally:
        conn.close()
