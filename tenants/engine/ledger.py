"""The ledger as the engine writes and reads it over its own connections (SQL, in the file's transaction)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from tenants.engine.models import LEDGER_TABLE
from tenants.engine.naming import tenant_roles
from tenants.engine.results import FailedFile
from tenants.engine.templates import Template

SCHEMA_STATE_SQL = f"""
SELECT s, EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = s), EXISTS (SELECT 1 FROM pg_roles WHERE rolname = o),
       a.versions, a.checksums
FROM unnest(%s::text[], %s::text[]) AS t(s, o)
LEFT JOIN LATERAL (
    SELECT array_agg(l.version ORDER BY l.version) AS versions, array_agg(l.checksum ORDER BY l.version) AS checksums
    FROM public.{LEDGER_TABLE} l WHERE l.schema_name = t.s AND l.success
) a ON true
"""


@dataclass(frozen=True)
class SchemaState:
    exists: bool
    owner_exists: bool
    applied: dict[int, str]  # version -> checksum of the successful ledger rows


def schema_states(conn: psycopg.Connection[Any], schemas: Sequence[str]) -> dict[str, SchemaState]:
    """Existence, owner role and applied versions of many schemas in one query (a rollout's starting point).

    Read on the privileged connection. Each file still re-checks the ledger under the schema's lock, so a
    state read earlier is safe to use.
    """
    owners = [tenant_roles(s).owner for s in schemas]
    rows = conn.execute(SCHEMA_STATE_SQL, [list(schemas), owners]).fetchall()
    return {
        row[0]: SchemaState(
            exists=row[1], owner_exists=row[2], applied=dict(zip(row[3] or (), row[4] or (), strict=True))
        )
        for row in rows
    }


def ledger_insert(
    template: Template, *, schema: str, applied_by: str, duration_ms: int | None, success: bool,
    failed: FailedFile | None = None,
) -> sql.Composable:  # fmt: skip
    """The ledger INSERT, with values quoted by psycopg (it joins the file's transaction in one round trip).

    ``duration_ms=None``: measured by the server, from the start of the simple query holding the file.
    """
    duration: sql.Composable = (
        sql.SQL("(extract(epoch FROM clock_timestamp() - statement_timestamp()) * 1000)::int")
        if duration_ms is None
        else sql.Literal(duration_ms)
    )
    values = [
        sql.Literal(schema),
        sql.Literal(template.version),
        sql.Literal(template.description[:200]),
        sql.Literal(template.filename),
        sql.Literal(template.checksum),
        sql.Literal(applied_by[:150]),
        duration,
        sql.Literal(success),
        sql.Literal(failed.sqlstate if failed else ""),
        sql.Literal(failed.error if failed else ""),
        sql.Literal(failed.statement if failed else ""),
        sql.Literal(failed.line if failed else None),
    ]
    return sql.SQL(
        "INSERT INTO public.{} (schema_name, version, description, filename, checksum, applied_by, duration_ms,"
        " success, sqlstate, error, failed_statement, failed_line, applied_at) VALUES ({}, clock_timestamp())"
    ).format(sql.Identifier(LEDGER_TABLE), sql.SQL(", ").join(values))


def applied_check(schema: str, version: int) -> sql.Composable:
    return sql.SQL(
        "SELECT EXISTS (SELECT 1 FROM public.{} WHERE schema_name = {} AND version = {} AND success)"
    ).format(sql.Identifier(LEDGER_TABLE), sql.Literal(schema), sql.Literal(version))
