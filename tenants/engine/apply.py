"""Applying templates to one schema: per file, one transaction with its ledger row, as the migrator.

Per file, on the migrator's connection (the privileged one has granted it the schema's owner role):
  BEGIN; SET LOCAL search_path TO <schema>; pg_advisory_xact_lock(<schema key>); ledger check;
  SET LOCAL ROLE <owner>; <the whole file, simple query protocol>; RESET ROLE; grants check; ledger row; COMMIT
in three round trips. Files are sent whole (the simple query protocol copes with ``$$`` bodies, ``DO``
blocks, strings and comments); PostgreSQL reports how many statements completed before the one that
failed, and the error position, which is how the failing statement is found without splitting SQL on
semicolons. Identifiers are validated, then quoted by ``psycopg.sql``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import pq, sql

from ghostcrm.core.errors import TransientError, ValidationError
from tenants.engine import connection
from tenants.engine.connection import StatementFailed, error_text, rollback_if_open, simple, value
from tenants.engine.grants import grants_check
from tenants.engine.ledger import SchemaState, applied_check, ledger_insert, schema_states
from tenants.engine.lint import template_refusals
from tenants.engine.naming import TenantRoles, schema_lock_key, tenant_roles
from tenants.engine.results import AppliedFile, ApplyResult, ApplyTarget, FailedFile, LockTimeout
from tenants.engine.schemas import migrator_ensure, owner_membership
from tenants.engine.templates import Template, TemplateSet, statement_slices, template_set_read, templates_directory

logger = logging.getLogger(__name__)

# SQLSTATEs that say "try again later" rather than "this template is wrong".
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01", "55P03", "57014", "57P01", "57P02", "57P03"})
LOCK_NOT_AVAILABLE = "55P03"
# Who holds a lock on a relation of the schema (read on the privileged connection: it sees every session).
BLOCKER_SQL = """
SELECT a.pid, coalesce(a.application_name, ''), extract(epoch FROM now() - coalesce(a.xact_start, a.query_start)),
       left(coalesce(a.query, ''), 500)
FROM pg_locks l
JOIN pg_class c ON c.oid = l.relation
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_stat_activity a ON a.pid = l.pid
WHERE n.nspname = %s AND l.granted AND l.pid <> ALL(%s)
ORDER BY coalesce(a.xact_start, a.query_start) NULLS LAST
LIMIT 1
"""


@dataclass(frozen=True)
class Timeouts:
    """Default ``lock_timeout`` and ``statement_timeout`` of every file (PostgreSQL durations, e.g. "5s")."""

    lock: str = "5s"
    statement: str = "10min"

    def for_file(self, template: Template) -> tuple[str, str]:
        headers = template.headers
        return headers.value("lock_timeout") or self.lock, headers.value("statement_timeout") or self.statement


class LockTimedOut(Exception):
    """A file waited longer than its lock_timeout; its transaction was rolled back, nothing recorded."""

    def __init__(self, template: Template, lock_timeout: str) -> None:
        super().__init__(template.filename)
        self.template = template
        self.lock_timeout = lock_timeout


NO_TRANSACTION_NOTE = "\n(no-transaction file: the statements before this one stay applied)"


def template_set_for_apply(directory: Path | None) -> TemplateSet:
    """The template set, refused while lint finds anything that makes applying unsafe (``tenant_sql lint``)."""
    templates = template_set_read(templates_directory(directory))
    blocking = templates.blocking_problems()
    for template in templates.templates:
        blocking.extend(template_refusals(template))
    if blocking:
        lines = "; ".join(str(p) for p in blocking[:5])
        more = f" (and {len(blocking) - 5} more)" if len(blocking) > 5 else ""
        raise ValidationError(
            f"The templates in {templates.directory} have problems; fix them first (tenant_sql lint): {lines}{more}.",
            code="templates_invalid",
        )
    return templates


def failing_statement(text: str, failure: StatementFailed) -> tuple[str, int | None]:
    """The statement of ``text`` that failed and the line it starts on (Atlas-style "where it stopped")."""
    slices = statement_slices(text)
    position = failure.error.diag.statement_position
    chosen: tuple[int, int] | None = None
    if position and position.isdigit():
        at = int(position) - 1  # 1-based, in characters of the query string; the file comes first in it
        chosen = next((s for s in slices if s[0] <= at < s[1] + 1), None)
    if chosen is None and failure.completed < len(slices):
        chosen = slices[failure.completed]
    if chosen is None:
        return "", None
    return text[chosen[0] : chosen[1]].strip(), text.count("\n", 0, chosen[0]) + 1


class SchemaApplier:
    """One worker's two dedicated connections (privileged and migrator), recycled every ``recycle_every`` schemas.

    PostgreSQL backends keep the relation cache of every table they touched; a long rollout over
    thousands of schemas would grow one backend without bound, so they are replaced periodically.
    """

    def __init__(
        self, *, templates: TemplateSet, applied_by: str, recycle_every: int = 300, timeouts: Timeouts | None = None
    ) -> None:
        self.templates = templates
        self.timeouts = timeouts or Timeouts()
        self.applied_by = applied_by
        self.recycle_every = max(1, recycle_every)
        self.admin: psycopg.Connection[Any] | None = None
        self.conn: psycopg.Connection[Any] | None = None
        self.states: dict[str, SchemaState] = {}
        self.used = 0
        self.connections_opened = 0

    def close(self) -> None:
        for conn in (self.conn, self.admin):
            if conn is not None:
                conn.close()
        self.conn = self.admin = None

    def _connections(self) -> tuple[psycopg.Connection[Any], psycopg.Connection[Any]]:
        stale = self.used >= self.recycle_every or any(
            c is not None and (c.closed or c.broken) for c in (self.conn, self.admin)
        )
        if stale:
            self.close()
        if self.admin is None or self.conn is None:
            self.close()
            self.admin = connection.engine_connect()
            # Its commits are the migrator's memberships: losing the last ones in a crash changes nothing that
            # the next apply of that schema does not redo, so they need not wait for the disk.
            simple(self.admin, "SET synchronous_commit TO off")
            migrator_ensure(self.admin)
            self.conn = connection.migrator_connect()
            self.connections_opened += 1
            self.used = 0
        self.used += 1
        return self.admin, self.conn

    def apply(self, target: ApplyTarget) -> ApplyResult:
        started = time.monotonic()
        result = ApplyResult(schema=target.schema)
        try:
            admin, conn = self._connections()
            self._apply(admin, conn, target, result)
        except TransientError as exc:
            result.error, result.transient = exc.message, True
        except StatementFailed as exc:
            result.error = f"the engine's own statement failed: {error_text(exc.error)}"
        except psycopg.OperationalError as exc:
            self.close()
            result.error = f"the tenant database connection was lost: {exc}".strip()
            result.transient = True
        except ValidationError as exc:
            result.error = result.error or exc.message
        result.duration_ms = int((time.monotonic() - started) * 1000)
        return result

    def _apply(
        self, admin: psycopg.Connection[Any], conn: psycopg.Connection[Any], target: ApplyTarget, result: ApplyResult
    ) -> None:
        schema = target.schema
        roles = tenant_roles(schema)
        state = self.states.get(schema) or schema_states(admin, [schema])[schema]
        pending = _pending(schema, roles, state, self.templates, result)
        if not pending:
            return
        with owner_membership(admin, schema):
            for template in pending:
                rendered = template.render(owner_role=roles.owner, app_role=roles.app, tenant_id=target.tenant_id)
                run = _apply_file_alone if template.no_transaction else _apply_file
                try:
                    done = run(conn, schema=schema, roles=roles, template=template, sql_text=rendered,
                               applied_by=self.applied_by, result=result,
                               timeouts=self.timeouts.for_file(template))  # fmt: skip
                except LockTimedOut as timed_out:
                    result.lock_timeout = _lock_timeout(admin, conn, schema, timed_out)
                    return
                if not done:
                    return


def _lock_timeout(
    admin: psycopg.Connection[Any], conn: psycopg.Connection[Any], schema: str, timed_out: LockTimedOut
) -> LockTimeout:
    """The timed-out file with whoever holds a lock in the schema (pid, application, how long, what)."""
    row = admin.execute(BLOCKER_SQL, [schema, [conn.info.backend_pid, admin.info.backend_pid]]).fetchone()
    template = timed_out.template
    logger.info("tenant_sql: %s waited longer than lock_timeout %s in %s; retry later (holder: %s)",
                template.filename, timed_out.lock_timeout, schema, row)  # fmt: skip
    if row is None:
        return LockTimeout(template.version, template.filename, timed_out.lock_timeout)
    return LockTimeout(
        version=template.version,
        filename=template.filename,
        lock_timeout=timed_out.lock_timeout,
        blocker_pid=row[0],
        blocker_application=row[1],
        blocker_age_s=None if row[2] is None else round(float(row[2]), 3),
        blocker_query=row[3],
    )


def _pending(
    schema: str, roles: TenantRoles, state: SchemaState, templates: TemplateSet, result: ApplyResult
) -> list[Template]:
    """The files still to apply, after refusing a missing schema or owner and checksum drift."""
    if not state.exists:
        raise ValidationError(f"Schema {schema} does not exist; create it first (schema_create / --create-schema).")
    if not state.owner_exists:
        raise ValidationError(f"Schema {schema} has no owner role {roles.owner}; run schema_create for it first.")
    applied = state.applied
    by_version = templates.by_version
    drift = [v for v, checksum in applied.items() if v in by_version and by_version[v].checksum != checksum]
    if drift:
        # As Flyway validates before migrating: an edited, already-applied file means the tenant's schema
        # no longer matches the files; a human decides (fix the file, or `tenant_sql repair`).
        raise ValidationError(
            f"Checksum drift in {schema} for version(s) {', '.join(f'{v:03d}' for v in drift)}: the applied "
            "files changed on disk. Run `tenant_sql validate`, then restore the files or `tenant_sql repair`."
        )
    result.already_applied = len([v for v in applied if v in by_version])
    return [t for t in templates.templates if t.version not in applied]


def _failed_file(template: Template, failure: StatementFailed, statement: str, line: int | None) -> FailedFile:
    return FailedFile(
        version=template.version,
        filename=template.filename,
        sqlstate=failure.error.diag.sqlstate or "",
        error=error_text(failure.error),
        statement=statement,
        line=line,
    )


def _record_failure(
    conn: psycopg.Connection[Any], *, schema: str, template: Template, failed: FailedFile, applied_by: str,
    duration_ms: int, result: ApplyResult,
) -> None:  # fmt: skip
    result.failed = failed
    result.transient = failed.sqlstate in RETRYABLE_SQLSTATES
    simple(conn, ledger_insert(template, schema=schema, applied_by=applied_by, duration_ms=duration_ms,
                               success=False, failed=failed))  # fmt: skip
    logger.warning("tenant_sql: %s failed in %s at line %s: %s", template.filename, schema, failed.line, failed.error)


def _apply_file(
    conn: psycopg.Connection[Any], *, schema: str, roles: TenantRoles, template: Template, sql_text: str,
    applied_by: str, result: ApplyResult, timeouts: tuple[str, str],
) -> bool:  # fmt: skip
    """Apply one file in its own transaction with its ledger row; False when it failed (recorded)."""
    ident = sql.Identifier
    prelude = sql.SQL(
        "BEGIN; SET LOCAL search_path TO {schema}; SELECT pg_advisory_xact_lock({key});"
        " {applied}; SET LOCAL lock_timeout TO {lock}; SET LOCAL statement_timeout TO {statement};"
        " SET LOCAL ROLE {owner}"
    ).format(
        schema=ident(schema), key=sql.Literal(schema_lock_key(schema)),
        applied=applied_check(schema, template.version), owner=ident(roles.owner),
        lock=sql.Literal(timeouts[0]), statement=sql.Literal(timeouts[1]),
    )  # fmt: skip
    try:
        # The ledger check is its own statement after the lock: it must see what a runner that held the
        # lock before us committed (READ COMMITTED takes a new snapshot per statement).
        results = simple(conn, prelude)
        if value(results[3]) == "t":
            simple(conn, "ROLLBACK")
            result.already_applied += 1
            return True
        # The file, then (only if every statement of it succeeded) the grants check, its ledger row and
        # COMMIT, in one round trip: a simple query stops at the first error. The file parsed (apply refuses
        # files that do not), so nothing in it can swallow the tail; the newline ends a trailing comment.
        tail = sql.SQL("\n;RESET ROLE; {}; {}; COMMIT").format(
            grants_check(schema, roles),
            ledger_insert(template, schema=schema, applied_by=applied_by, duration_ms=None, success=True),
        )
        started = time.monotonic()
        try:
            results = simple(conn, sql_text + tail.as_string(conn))
        except StatementFailed as failure:
            duration_ms = int((time.monotonic() - started) * 1000)
            simple(conn, "ROLLBACK")
            if failure.error.diag.sqlstate == LOCK_NOT_AVAILABLE:
                raise LockTimedOut(template, timeouts[0]) from failure
            statement, line = failing_statement(sql_text, failure)
            failed = _failed_file(template, failure, statement, line)
            _record_failure(conn, schema=schema, template=template, failed=failed, applied_by=applied_by,
                            duration_ms=duration_ms, result=result)  # fmt: skip
            return False
        duration_ms = int((time.monotonic() - started) * 1000)
        if conn.pgconn.transaction_status != pq.TransactionStatus.IDLE or not results:
            raise ValidationError(f"{template.filename} left the engine's transaction in an unexpected state.")
    except BaseException:
        rollback_if_open(conn)
        raise
    result.applied.append(AppliedFile(template.version, template.filename, duration_ms))
    return True


def _apply_file_alone(
    conn: psycopg.Connection[Any], *, schema: str, roles: TenantRoles, template: Template, sql_text: str,
    applied_by: str, result: ApplyResult, timeouts: tuple[str, str],
) -> bool:  # fmt: skip
    """A file marked ``-- tenant_sql: no-transaction``: each statement alone in autocommit, ledger row after.

    Statements like CREATE INDEX CONCURRENTLY refuse to run in a transaction block, and a multi-statement
    simple query is one; so here (only here) the file is split, by PostgreSQL's parser. The advisory lock
    is held at session level for the file; statements before a failing one stay applied.
    """
    ident = sql.Identifier
    key = sql.Literal(schema_lock_key(schema))
    results = simple(
        conn,
        sql.SQL("SELECT pg_advisory_lock({key}); {applied}").format(
            key=key, applied=applied_check(schema, template.version)
        ),
    )
    try:
        if value(results[1]) == "t":
            result.already_applied += 1
            return True
        session = sql.SQL("SET search_path TO {}; SET lock_timeout TO {}; SET statement_timeout TO {}; SET ROLE {}")
        simple(
            conn, session.format(ident(schema), sql.Literal(timeouts[0]), sql.Literal(timeouts[1]), ident(roles.owner))
        )
        started = time.monotonic()
        pieces = [(start, sql_text[start:end]) for start, end in statement_slices(sql_text)]
        # The grants check runs as the migrator (the owner role may not execute it).
        pieces.append((len(sql_text), "RESET ROLE; " + grants_check(schema, roles).as_string(conn)))
        for start, piece in pieces:
            try:
                simple(conn, piece)
            except StatementFailed as failure:
                simple(conn, "RESET ROLE")
                if failure.error.diag.sqlstate == LOCK_NOT_AVAILABLE:
                    raise LockTimedOut(template, timeouts[0]) from failure
                statement, _ = failing_statement(piece, failure)
                failed = _failed_file(template, failure, statement or piece.strip(), sql_text.count("\n", 0, start) + 1)
                failed = FailedFile(**{**failed.__dict__, "error": failed.error + NO_TRANSACTION_NOTE})
                _record_failure(conn, schema=schema, template=template, failed=failed, applied_by=applied_by,
                                duration_ms=int((time.monotonic() - started) * 1000), result=result)  # fmt: skip
                return False
        duration_ms = int((time.monotonic() - started) * 1000)
        simple(conn, "RESET ROLE")
        simple(
            conn, ledger_insert(template, schema=schema, applied_by=applied_by, duration_ms=duration_ms, success=True)
        )
        result.applied.append(AppliedFile(template.version, template.filename, duration_ms))
        return True
    finally:
        if not conn.closed and not conn.broken:
            simple(conn, sql.SQL("RESET ROLE; RESET search_path; RESET lock_timeout; RESET statement_timeout;"
                                 " SELECT pg_advisory_unlock({})").format(key))  # fmt: skip
