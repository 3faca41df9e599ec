"""The template engine's writes: tenant schemas and roles, applying templates, repairing the ledger.

The DDL path never uses Django's connection: each worker holds ONE dedicated psycopg connection in
autocommit mode and drives its transactions itself, so that per file it can
  BEGIN; SET LOCAL search_path TO <tenant schema>; pg_advisory_xact_lock(<schema key>); ledger check;
  SET LOCAL ROLE <owner>; <the whole file, simple query protocol>; RESET ROLE; ledger row; COMMIT
in four round trips. Files are sent whole (the simple query protocol copes with ``$$`` bodies, ``DO``
blocks, strings and comments); PostgreSQL reports how many statements completed before the one that
failed, and the error position, which is how the failing statement is found without splitting SQL on
semicolons. Identifiers are validated, then quoted by ``psycopg.sql``.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import connections, transaction
from psycopg import generators, pq, sql

from ghostcrm.audit.services import Actor, audit_record
from ghostcrm.core.errors import TransientError, ValidationError
from tenants.engine.lint import (
    BLOCKING_RULES,
    Template,
    TemplateSet,
    statement_slices,
    template_apply_blocked,
    template_lint,
    template_set_read,
)
from tenants.engine.models import LEDGER_TABLE, TemplateApplication
from tenants.schema_names import validate_schema_name

logger = logging.getLogger(__name__)

LOCK_NAMESPACE = b"ghostcrm.tenant_sql\x00"
TENANT_ID_NAMESPACE = uuid.UUID("5b0f7b8e-3c1e-4f55-9d0e-6f1b7c2a9e41")
APPLICATION_NAME = "ghostcrm tenant_sql"
# SQLSTATEs that say "try again later" rather than "this template is wrong".
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01", "55P03", "57014", "57P01", "57P02", "57P03"})
ROLE_SUFFIX_LEN = len("_000000_own")
NO_TRANSACTION_NOTE = "\n(no-transaction file: the statements before this one stay applied)"


class TemplateApplyError(ValidationError):
    """A template file failed in a schema; the failure is recorded in the ledger. Permanent until fixed."""

    code = "template_apply_failed"

    def __init__(self, message: str, *, result: ApplyResult | None = None) -> None:
        super().__init__(message, extra={"result": result.as_dict()} if result else None)
        self.result = result


@dataclass(frozen=True)
class TenantRoles:
    owner: str
    app: str


@dataclass(frozen=True)
class AppliedFile:
    version: int
    filename: str
    duration_ms: int


@dataclass(frozen=True)
class FailedFile:
    version: int
    filename: str
    sqlstate: str
    error: str
    statement: str
    line: int | None


@dataclass
class ApplyResult:
    schema: str
    applied: list[AppliedFile] = field(default_factory=list)
    already_applied: int = 0
    failed: FailedFile | None = None
    error: str = ""  # a failure that is not a template's (missing schema, drift, lost connection)
    transient: bool = False
    duration_ms: int = 0

    @property
    def status(self) -> str:
        if self.failed is not None or self.error:
            return "failed"
        return "applied" if self.applied else "up_to_date"

    @property
    def ok(self) -> bool:
        return self.status != "failed"

    def as_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "status": self.status,
            "applied": [asdict(a) for a in self.applied],
            "already_applied": self.already_applied,
            "failed": asdict(self.failed) if self.failed else None,
            "error": self.error or None,
            "transient": self.transient,
            "duration_ms": self.duration_ms,
        }


@dataclass
class RolloutResult:
    directory: str
    jobs: int
    results: list[ApplyResult]
    duration_ms: int

    @property
    def failed(self) -> list[ApplyResult]:
        return [r for r in self.results if not r.ok]

    def summary(self) -> dict[str, int]:
        return {
            "schemas": len(self.results),
            "applied": sum(1 for r in self.results if r.status == "applied"),
            "up_to_date": sum(1 for r in self.results if r.status == "up_to_date"),
            "failed": len(self.failed),
            "files_applied": sum(len(r.applied) for r in self.results),
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "directory": self.directory,
            "jobs": self.jobs,
            "duration_ms": self.duration_ms,
            "summary": self.summary(),
            "schemas": [r.as_dict() for r in self.results],
        }


# --- names, keys, connections ---------------------------------------------------------------------------


def schema_name_check(schema: str) -> str:
    """``schema`` if it is a valid client schema name, else our ``ValidationError`` (before any SQL runs)."""
    try:
        validate_schema_name(schema)
    except DjangoValidationError as exc:
        raise ValidationError(" ".join(exc.messages), code="invalid_schema_name") from None
    return schema


def tenant_roles(schema: str) -> TenantRoles:
    """The owner and app role names of a schema: deterministic, <= 63 characters, unique by a hash suffix."""
    schema_name_check(schema)
    prefix = settings.TENANT_ROLE_PREFIX
    room = 63 - len(prefix) - 1 - ROLE_SUFFIX_LEN
    if room < 3:
        raise ImproperlyConfigured(f"TENANT_ROLE_PREFIX {prefix!r} is too long: keep it to 40 characters.")
    digest = hashlib.sha256(schema.encode()).hexdigest()[:6]
    stem = f"{prefix}_{schema[:room]}_{digest}"
    return TenantRoles(owner=f"{stem}_own", app=f"{stem}_app")


def schema_lock_key(schema: str) -> int:
    """A stable signed 64-bit advisory-lock key for a schema (the same in every process and release)."""
    digest = hashlib.sha256(LOCK_NAMESPACE + schema.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def scratch_tenant_id(schema: str) -> str:
    """``${tenant_id}`` for a schema that is not a registered tenant: a stable UUID derived from its name."""
    return str(uuid.uuid5(TENANT_ID_NAMESPACE, schema))


def engine_connect() -> psycopg.Connection[Any]:
    """A new dedicated connection to the tenant database (autocommit: the engine issues BEGIN itself)."""
    params = connections[settings.TENANT_DB_ALIAS].settings_dict
    options = {
        k: v for k, v in (params.get("OPTIONS") or {}).items() if k in {"sslmode", "sslrootcert", "connect_timeout"}
    }
    try:
        return psycopg.connect(
            host=params.get("HOST") or None,
            port=params.get("PORT") or 5432,
            user=params.get("USER") or None,
            password=params.get("PASSWORD") or None,
            dbname=params["NAME"],
            autocommit=True,
            application_name=APPLICATION_NAME,
            **options,
        )
    except psycopg.OperationalError as exc:
        raise TransientError(f"Cannot connect to the tenant database: {exc}".strip()) from exc


def templates_directory(directory: Path | None) -> Path:
    return Path(directory) if directory is not None else Path(settings.TENANT_TEMPLATES_DIR)


def template_set_for_apply(directory: Path | None) -> TemplateSet:
    """The template set, refused while it has problems that make applying unsafe (see ``tenant_sql lint``)."""
    templates = template_set_read(templates_directory(directory))
    blocking = templates.blocking_problems()
    for template in templates.templates:
        if template_apply_blocked(template):
            blocking.extend(p for p in template_lint(template) if p.rule in BLOCKING_RULES)
    if blocking:
        lines = "; ".join(str(p) for p in blocking[:5])
        more = f" (and {len(blocking) - 5} more)" if len(blocking) > 5 else ""
        raise ValidationError(
            f"The templates in {templates.directory} have problems; fix them first (tenant_sql lint): {lines}{more}.",
            code="templates_invalid",
        )
    return templates


class _StatementFailed(Exception):
    """PostgreSQL rejected a statement of a simple query: the error and how many statements completed."""

    def __init__(self, error: psycopg.Error, completed: int) -> None:
        super().__init__(str(error))
        self.error = error
        self.completed = completed


def _simple(conn: psycopg.Connection[Any], text: str | sql.Composable) -> list[pq.abc.PGresult]:
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
            raise _StatementFailed(psycopg.errors.error_from_result(result, encoding=conn.info.encoding), completed)
    return results


def _value(result: pq.abc.PGresult) -> str | None:
    raw = result.get_value(0, 0)
    return None if raw is None else bytes(raw).decode()


def _error_text(error: psycopg.Error) -> str:
    diag = error.diag
    parts = [diag.message_primary or str(error).strip()]
    if diag.message_detail:
        parts.append(f"DETAIL: {diag.message_detail}")
    if diag.message_hint:
        parts.append(f"HINT: {diag.message_hint}")
    if diag.context:
        parts.append(f"CONTEXT: {diag.context}")
    return "\n".join(parts)


def _failing_statement(text: str, failure: _StatementFailed) -> tuple[str, int | None]:
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


# --- roles and schemas ----------------------------------------------------------------------------------


def _schema_create_on(conn: psycopg.Connection[Any], *, schema: str, app_password: str | None) -> list[str]:
    """Create whatever is missing of the schema and its two roles; return what changed (for the audit)."""
    roles = tenant_roles(schema)
    ident = sql.Identifier
    changes: list[str] = []
    _simple(conn, sql.SQL("BEGIN; SELECT pg_advisory_xact_lock({})").format(sql.Literal(schema_lock_key(schema))))
    try:
        found = conn.execute(
            "SELECT (SELECT array_agg(rolname::text) FROM pg_roles WHERE rolname = ANY(%s)),"
            " EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %s),"
            " (SELECT rolsuper FROM pg_roles WHERE rolname = current_user), current_database()",
            [[roles.owner, roles.app], schema],
        ).fetchone()
        assert found is not None
        existing, schema_exists, is_super, database = set(found[0] or ()), found[1], found[2], found[3]
        statements: list[sql.Composable] = []
        if roles.owner not in existing:
            statements.append(sql.SQL("CREATE ROLE {} NOLOGIN").format(ident(roles.owner)))
            changes.append(f"role {roles.owner} created")
        else:
            statements.append(sql.SQL("ALTER ROLE {} NOLOGIN").format(ident(roles.owner)))
        if roles.app not in existing:
            statements.append(sql.SQL("CREATE ROLE {} LOGIN").format(ident(roles.app)))
            changes.append(f"role {roles.app} created")
        # An existing app role keeps its LOGIN/NOLOGIN: a suspended tenant's role stays shut (tenants.roles).
        if app_password is not None:
            # Utility statements take no bind parameters: the password goes as a psycopg-quoted literal.
            statements.append(sql.SQL("ALTER ROLE {} PASSWORD {}").format(ident(roles.app), sql.Literal(app_password)))
            changes.append(f"password of {roles.app} set")
        if not is_super:
            # A non-superuser control plane must be a member of the owner role to run templates as it.
            statements.append(sql.SQL("GRANT {} TO CURRENT_USER").format(ident(roles.owner)))
        if not schema_exists:
            statements.append(sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(ident(schema), ident(roles.owner)))
            changes.append(f"schema {schema} created")
        else:
            statements.append(sql.SQL("ALTER SCHEMA {} OWNER TO {}").format(ident(schema), ident(roles.owner)))
        statements += [
            sql.SQL("REVOKE ALL ON SCHEMA {} FROM PUBLIC").format(ident(schema)),
            sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(ident(schema), ident(roles.app)),
            # The CRM app's sessions see their own schema only (pg_catalog stays implicit).
            sql.SQL("ALTER ROLE {} IN DATABASE {} SET search_path TO {}").format(
                ident(roles.app), ident(database), ident(schema)
            ),
        ]
        _simple(conn, sql.SQL("; ").join(statements))
        _simple(conn, "COMMIT")
    except BaseException:
        if conn.pgconn.transaction_status != pq.TransactionStatus.UNKNOWN:
            _simple(conn, "ROLLBACK")
        raise
    return changes


def _run_write(action: str, func: Callable[[psycopg.Connection[Any]], Any]) -> Any:
    conn = engine_connect()
    try:
        return func(conn)
    except _StatementFailed as exc:
        raise ValidationError(f"{action} failed: {_error_text(exc.error)}", code="tenant_sql_failed") from exc
    except psycopg.OperationalError as exc:
        raise TransientError(f"{action} failed, the tenant database connection was lost: {exc}".strip()) from exc
    finally:
        conn.close()


def schema_create(*, schema: str, app_password: str | None = None, actor: Actor | None = None) -> None:
    """Create the schema with its NOLOGIN owner role and LOGIN app role; idempotent, audited when it changes."""
    schema_name_check(schema)
    started = time.monotonic()
    changes = _run_write(
        f"Creating schema {schema}", lambda conn: _schema_create_on(conn, schema=schema, app_password=app_password)
    )
    if changes:
        roles = tenant_roles(schema)
        audit_record(
            action="tenant_sql.schema_create",
            actor=actor or Actor.system("tenant_sql"),
            target_type="tenant_sql.schema",
            target_id=schema,
            target_repr=schema,
            after={"schema": schema, "owner_role": roles.owner, "app_role": roles.app, "changes": changes},
            message="; ".join(changes),
            duration_ms=int((time.monotonic() - started) * 1000),
        )


def schema_drop(*, schema: str, actor: Actor | None = None) -> None:
    """Drop the schema (CASCADE), its ledger rows and both roles, in one transaction; audited."""
    schema_name_check(schema)
    roles = tenant_roles(schema)
    started = time.monotonic()

    def drop(conn: psycopg.Connection[Any]) -> dict[str, Any]:
        ident = sql.Identifier
        _simple(conn, sql.SQL("BEGIN; SELECT pg_advisory_xact_lock({})").format(sql.Literal(schema_lock_key(schema))))
        try:
            row = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %s),"
                " (SELECT array_agg(rolname::text) FROM pg_roles WHERE rolname = ANY(%s)),"
                f" (SELECT count(*) FROM public.{LEDGER_TABLE} WHERE schema_name = %s)",
                [schema, [roles.owner, roles.app], schema],
            ).fetchone()
            assert row is not None
            existed, present, ledger_rows = row[0], set(row[1] or ()), row[2]
            statements: list[sql.Composable] = []
            if existed:
                statements.append(sql.SQL("DROP SCHEMA {} CASCADE").format(ident(schema)))
            for role in (roles.app, roles.owner):
                if role in present:
                    # Anything the role still owns elsewhere is kept (given to us), its privileges revoked.
                    statements.append(sql.SQL("REASSIGN OWNED BY {} TO CURRENT_USER").format(ident(role)))
                    statements.append(sql.SQL("DROP OWNED BY {}").format(ident(role)))
                    statements.append(sql.SQL("DROP ROLE {}").format(ident(role)))
            if statements:
                _simple(conn, sql.SQL("; ").join(statements))
            conn.execute(f"DELETE FROM public.{LEDGER_TABLE} WHERE schema_name = %s", [schema])
            _simple(conn, "COMMIT")
        except BaseException:
            if conn.pgconn.transaction_status != pq.TransactionStatus.UNKNOWN:
                _simple(conn, "ROLLBACK")
            raise
        return {"schema_existed": existed, "roles": sorted(present), "ledger_rows": ledger_rows}

    before = _run_write(f"Dropping schema {schema}", drop)
    if before["schema_existed"] or before["roles"] or before["ledger_rows"]:
        audit_record(
            action="tenant_sql.schema_drop",
            actor=actor or Actor.system("tenant_sql"),
            target_type="tenant_sql.schema",
            target_id=schema,
            target_repr=schema,
            before=before,
            message=f"schema {schema} and its roles dropped",
            duration_ms=int((time.monotonic() - started) * 1000),
        )


# --- applying templates ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApplyTarget:
    schema: str
    tenant_id: str


class SchemaApplier:
    """One worker's dedicated connection, recycled every ``recycle_every`` schemas.

    PostgreSQL backends keep the relation cache of every table they touched; a long rollout over
    thousands of schemas would grow one backend without bound, so it is replaced periodically.
    """

    def __init__(self, *, templates: TemplateSet, applied_by: str, recycle_every: int = 300) -> None:
        self.templates = templates
        self.applied_by = applied_by
        self.recycle_every = max(1, recycle_every)
        self.conn: psycopg.Connection[Any] | None = None
        self.states: dict[str, SchemaState] = {}
        self.used = 0
        self.connections_opened = 0

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def _connection(self) -> psycopg.Connection[Any]:
        if self.conn is not None and (self.conn.closed or self.conn.broken or self.used >= self.recycle_every):
            self.close()
        if self.conn is None:
            self.conn = engine_connect()
            self.connections_opened += 1
            self.used = 0
        self.used += 1
        return self.conn

    def apply(self, target: ApplyTarget) -> ApplyResult:
        started = time.monotonic()
        result = ApplyResult(schema=target.schema)
        try:
            conn = self._connection()
            _apply_schema(conn, target=target, templates=self.templates, applied_by=self.applied_by, result=result,
                          state=self.states.get(target.schema))  # fmt: skip
        except TransientError as exc:
            result.error, result.transient = exc.message, True
        except _StatementFailed as exc:
            result.error = f"the engine's own statement failed: {_error_text(exc.error)}"
        except psycopg.OperationalError as exc:
            self.close()
            result.error = f"the tenant database connection was lost: {exc}".strip()
            result.transient = True
        except ValidationError as exc:
            result.error = result.error or exc.message
        result.duration_ms = int((time.monotonic() - started) * 1000)
        return result


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

    Each file still re-checks the ledger under the schema's lock, so a state read earlier is safe to use.
    """
    owners = [tenant_roles(s).owner for s in schemas]
    rows = conn.execute(SCHEMA_STATE_SQL, [list(schemas), owners]).fetchall()
    return {
        row[0]: SchemaState(
            exists=row[1], owner_exists=row[2], applied=dict(zip(row[3] or (), row[4] or (), strict=True))
        )
        for row in rows
    }


def _apply_schema(
    conn: psycopg.Connection[Any], *, target: ApplyTarget, templates: TemplateSet, applied_by: str,
    result: ApplyResult, state: SchemaState | None = None,
) -> None:  # fmt: skip
    schema = target.schema
    roles = tenant_roles(schema)
    if state is None:
        state = schema_states(conn, [schema])[schema]
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
    for template in templates.templates:
        if template.version in applied:
            continue
        rendered = template.render(owner_role=roles.owner, app_role=roles.app, tenant_id=target.tenant_id)
        if template.no_transaction:
            done = _apply_file_alone(conn, schema=schema, roles=roles, template=template, sql_text=rendered,
                                     applied_by=applied_by, result=result)  # fmt: skip
        else:
            done = _apply_file(conn, schema=schema, roles=roles, template=template, sql_text=rendered,
                               applied_by=applied_by, result=result)  # fmt: skip
        if not done:
            return


def _ledger_insert(
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


def _record_failure(
    conn: psycopg.Connection[Any], *, schema: str, template: Template, sql_text: str, failure: _StatementFailed,
    applied_by: str, duration_ms: int, result: ApplyResult,
) -> None:  # fmt: skip
    statement, line = _failing_statement(sql_text, failure)
    failed = FailedFile(
        version=template.version,
        filename=template.filename,
        sqlstate=failure.error.diag.sqlstate or "",
        error=_error_text(failure.error),
        statement=statement,
        line=line,
    )
    result.failed = failed
    result.transient = failed.sqlstate in RETRYABLE_SQLSTATES
    # Its own transaction: the file's was rolled back whole.
    _simple(conn, _ledger_insert(template, schema=schema, applied_by=applied_by, duration_ms=duration_ms,
                                 success=False, failed=failed))  # fmt: skip
    logger.warning("tenant_sql: %s failed in %s at line %s: %s", template.filename, schema, line, failed.error)


def _applied_check(schema: str, version: int) -> sql.Composable:
    return sql.SQL(
        "SELECT EXISTS (SELECT 1 FROM public.{} WHERE schema_name = {} AND version = {} AND success)"
    ).format(sql.Identifier(LEDGER_TABLE), sql.Literal(schema), sql.Literal(version))


def _apply_file(
    conn: psycopg.Connection[Any], *, schema: str, roles: TenantRoles, template: Template, sql_text: str,
    applied_by: str, result: ApplyResult,
) -> bool:  # fmt: skip
    """Apply one file in its own transaction with its ledger row; False when it failed (recorded)."""
    ident = sql.Identifier
    prelude = sql.SQL(
        "BEGIN; SET LOCAL search_path TO {schema}; SELECT pg_advisory_xact_lock({key});"
        " {applied}; SET LOCAL ROLE {owner}"
    ).format(
        schema=ident(schema), key=sql.Literal(schema_lock_key(schema)),
        applied=_applied_check(schema, template.version), owner=ident(roles.owner),
    )  # fmt: skip
    try:
        # The ledger check is its own statement after the lock: it must see what a runner that held the
        # lock before us committed (READ COMMITTED takes a new snapshot per statement).
        results = _simple(conn, prelude)
        if _value(results[3]) == "t":
            _simple(conn, "ROLLBACK")
            result.already_applied += 1
            return True
        # The file, then (only if every statement of it succeeded) its ledger row and COMMIT, in one round
        # trip: a simple query stops at the first error. The file parsed (apply refuses files that do not),
        # so nothing in it can swallow the tail; the newline ends a trailing `--` comment.
        tail = sql.SQL("\n;RESET ROLE; {}; COMMIT").format(
            _ledger_insert(template, schema=schema, applied_by=applied_by, duration_ms=None, success=True)
        )
        started = time.monotonic()
        try:
            results = _simple(conn, sql_text + tail.as_string(conn))
        except _StatementFailed as failure:
            duration_ms = int((time.monotonic() - started) * 1000)
            _simple(conn, "ROLLBACK")
            _record_failure(conn, schema=schema, template=template, sql_text=sql_text, failure=failure,
                            applied_by=applied_by, duration_ms=duration_ms, result=result)  # fmt: skip
            return False
        duration_ms = int((time.monotonic() - started) * 1000)
        if conn.pgconn.transaction_status != pq.TransactionStatus.IDLE or not results:
            raise ValidationError(f"{template.filename} left the engine's transaction in an unexpected state.")
    except BaseException:
        if not conn.closed and conn.pgconn.transaction_status in {
            pq.TransactionStatus.INTRANS, pq.TransactionStatus.INERROR,
        }:  # fmt: skip
            _simple(conn, "ROLLBACK")
        raise
    result.applied.append(AppliedFile(template.version, template.filename, duration_ms))
    return True


def _apply_file_alone(
    conn: psycopg.Connection[Any], *, schema: str, roles: TenantRoles, template: Template, sql_text: str,
    applied_by: str, result: ApplyResult,
) -> bool:  # fmt: skip
    """A file marked ``-- tenant_sql: no-transaction``: each statement alone in autocommit, ledger row after.

    Statements like CREATE INDEX CONCURRENTLY refuse to run in a transaction block, and a multi-statement
    simple query is one; so here (only here) the file is split, by PostgreSQL's parser. The advisory lock
    is held at session level for the file; statements before a failing one stay applied.
    """
    ident = sql.Identifier
    key = sql.Literal(schema_lock_key(schema))
    results = _simple(
        conn,
        sql.SQL("SELECT pg_advisory_lock({key}); {applied}").format(
            key=key, applied=_applied_check(schema, template.version)
        ),
    )
    try:
        if _value(results[1]) == "t":
            result.already_applied += 1
            return True
        _simple(conn, sql.SQL("SET search_path TO {}; SET ROLE {}").format(ident(schema), ident(roles.owner)))
        started = time.monotonic()
        for start, end in statement_slices(sql_text):
            try:
                _simple(conn, sql_text[start:end])
            except _StatementFailed as failure:
                duration_ms = int((time.monotonic() - started) * 1000)
                _simple(conn, "RESET ROLE")
                sub_text = sql_text[start:end]
                statement, _ = _failing_statement(sub_text, failure)
                line = sql_text.count("\n", 0, start) + 1
                failed = FailedFile(
                    version=template.version, filename=template.filename, sqlstate=failure.error.diag.sqlstate or "",
                    error=_error_text(failure.error) + NO_TRANSACTION_NOTE,
                    statement=statement or sub_text.strip(), line=line,
                )  # fmt: skip
                result.failed, result.transient = failed, failed.sqlstate in RETRYABLE_SQLSTATES
                _simple(conn, _ledger_insert(template, schema=schema, applied_by=applied_by, duration_ms=duration_ms,
                                             success=False, failed=failed))  # fmt: skip
                return False
        duration_ms = int((time.monotonic() - started) * 1000)
        _simple(conn, "RESET ROLE")
        _simple(
            conn, _ledger_insert(template, schema=schema, applied_by=applied_by, duration_ms=duration_ms, success=True)
        )
        result.applied.append(AppliedFile(template.version, template.filename, duration_ms))
        return True
    finally:
        if not conn.closed and not conn.broken:
            _simple(conn, sql.SQL("RESET ROLE; RESET search_path; SELECT pg_advisory_unlock({})").format(key))


def tenant_ids_for(schemas: Sequence[str]) -> dict[str, str]:
    """``${tenant_id}`` of registered schemas: the organisation's UUID."""
    from tenants.models import Tenant

    rows = Tenant.objects.using(settings.TENANT_DB_ALIAS).filter(schema_name__in=list(schemas))
    return {schema: str(org_id) for schema, org_id in rows.values_list("schema_name", "organization_id")}


def schema_apply(
    *,
    schema: str,
    directory: Path | None = None,
    applied_by: str = "system",
    tenant_id: str | None = None,
    actor: Actor | None = None,
) -> ApplyResult:
    """Apply the pending templates to one schema (used by provisioning); audited.

    Raises ``TemplateApplyError`` once a failing file is recorded in the ledger, ``TransientError`` when the
    connection is lost (or the failure may pass by itself), ``ValidationError`` for anything else refused.
    """
    schema_name_check(schema)
    templates = template_set_for_apply(directory)
    if tenant_id is None:
        tenant_id = tenant_ids_for([schema]).get(schema) or scratch_tenant_id(schema)
    applier = SchemaApplier(templates=templates, applied_by=applied_by)
    try:
        result = applier.apply(ApplyTarget(schema=schema, tenant_id=tenant_id))
    finally:
        applier.close()
    _audit_apply(result, actor=actor, directory=templates.directory)
    if result.failed is not None:
        message = (
            f"{result.failed.filename} failed in schema {schema}"
            f"{f' at line {result.failed.line}' if result.failed.line else ''}: {result.failed.error.splitlines()[0]}"
        )
        if result.transient:
            raise TransientError(message)
        raise TemplateApplyError(message, result=result)
    if result.error:
        if result.transient:
            raise TransientError(f"Applying templates to {schema} failed: {result.error}")
        raise ValidationError(result.error, code="apply_refused")
    return result


def _audit_apply(result: ApplyResult, *, actor: Actor | None, directory: Path) -> None:
    if result.status == "up_to_date":
        return  # nothing changed
    audit_record(
        action="tenant_sql.apply",
        actor=actor or Actor.system("tenant_sql"),
        target_type="tenant_sql.schema",
        target_id=result.schema,
        target_repr=result.schema,
        after={"directory": str(directory), **result.as_dict()},
        outcome="success" if result.ok else "failure",
        message=result.error or (f"{result.failed.filename} failed" if result.failed else "templates applied"),
        duration_ms=result.duration_ms,
    )


class UnregisteredSchemas(ValidationError):
    """Schemas named for a rollout that are not registered tenants (and no scratch schemas were asked for)."""

    code = "unregistered_schema"


def rollout_targets(
    *, schemas: Sequence[str] | None, create_schema: bool = False, directory: Path | None = None, actor: Actor
) -> list[ApplyTarget]:
    """The targets of a rollout: every registered tenant (``schemas=None``) or the named schemas.

    A named schema that is not a registered tenant is refused, unless ``create_schema``: then it is created
    with its roles exactly as provisioning does, once the template set is known to be sound.
    """
    from tenants.engine.selectors import registered_schemas

    if schemas is None:
        if create_schema:
            raise ValidationError(
                "--create-schema is for scratch schemas: use it with --schema or --tenants, not --all.",
                code="create_schema_with_all",
            )
        names = registered_schemas()
    else:
        names = list(dict.fromkeys(schemas))
        for name in names:
            schema_name_check(name)
    tenant_ids = tenant_ids_for(names)
    unregistered = [s for s in names if s not in tenant_ids]
    if unregistered and not create_schema:
        raise UnregisteredSchemas(
            f"Not a registered tenant: {', '.join(unregistered)}. Pass --create-schema to apply to a scratch schema."
        )
    template_set_for_apply(directory)  # refuse a broken template set before creating anything
    for schema in unregistered:
        schema_create(schema=schema, actor=actor)
    return [ApplyTarget(schema=s, tenant_id=tenant_ids.get(s) or scratch_tenant_id(s)) for s in names]


def schemas_apply(
    *,
    targets: Sequence[ApplyTarget],
    directory: Path | None = None,
    jobs: int = 1,
    applied_by: str = "system",
    recycle_every: int | None = None,
    on_result: Callable[[ApplyResult], None] | None = None,
    actor: Actor | None = None,
) -> RolloutResult:
    """Apply pending templates to many schemas, ``jobs`` at a time, each worker with one connection.

    A schema that fails does not stop the others; re-running resumes where each schema stopped. One audit
    event covers the run (the ledger holds the per-schema, per-file record).
    """
    for target in targets:
        schema_name_check(target.schema)
    if jobs < 1:
        raise ValidationError("--jobs must be at least 1.", code="invalid_jobs")
    templates = template_set_for_apply(directory)
    if recycle_every is None:
        from ghostcrm.core.system_settings import setting_value

        recycle_every = int(setting_value("tenant_sql.recycle_every"))
    started = time.monotonic()
    states: dict[str, SchemaState] = {}
    if targets:
        conn = engine_connect()
        try:
            states = schema_states(conn, [t.schema for t in targets])
        except psycopg.OperationalError as exc:
            raise TransientError(f"Reading the tenants' ledger failed, the connection was lost: {exc}") from exc
        finally:
            conn.close()
    work: queue.SimpleQueue[ApplyTarget | None] = queue.SimpleQueue()
    for target in targets:
        work.put(target)
    workers = max(1, min(jobs, len(targets)))
    for _ in range(workers):
        work.put(None)
    results: list[ApplyResult] = []
    results_lock = threading.Lock()

    def worker() -> None:
        applier = SchemaApplier(templates=templates, applied_by=applied_by, recycle_every=recycle_every)
        applier.states = states
        try:
            while (target := work.get()) is not None:
                result = applier.apply(target)
                with results_lock:
                    results.append(result)
                    if on_result is not None:
                        on_result(result)
        finally:
            applier.close()

    if workers == 1:
        worker()  # no thread for a single worker: simpler tracebacks, same behaviour
    else:
        threads = [threading.Thread(target=worker, name=f"tenant_sql-{i}", daemon=True) for i in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    order = {t.schema: i for i, t in enumerate(targets)}
    results.sort(key=lambda r: order.get(r.schema, 0))
    rollout = RolloutResult(
        directory=str(templates.directory), jobs=workers, results=results,
        duration_ms=int((time.monotonic() - started) * 1000),
    )  # fmt: skip
    summary = rollout.summary()
    if summary["applied"] or summary["failed"]:
        audit_record(
            action="tenant_sql.rollout",
            actor=actor or Actor.system("tenant_sql"),
            target_type="tenant_sql.rollout",
            target_repr=f"{summary['schemas']} schema(s)",
            after={
                "directory": rollout.directory,
                "summary": summary,
                "applied": {r.schema: [a.version for a in r.applied] for r in results if r.applied},
                "failed": {r.schema: (r.failed.filename if r.failed else r.error) for r in rollout.failed},
            },
            outcome="success" if not summary["failed"] else "failure",
            message=f"{summary['files_applied']} file(s) applied, {summary['failed']} schema(s) failed",
            duration_ms=rollout.duration_ms,
        )
    return rollout


# --- repair ---------------------------------------------------------------------------------------------


@dataclass
class RepairResult:
    schema: str
    failures_cleared: list[dict[str, Any]]
    checksums_updated: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def schema_repair(*, schema: str, directory: Path | None = None, actor: Actor | None = None) -> RepairResult:
    """After a human fixed things: clear the schema's outstanding failure records and re-checksum its applied
    files from disk (Flyway's ``repair``). Audited with what was cleared and changed."""
    schema_name_check(schema)
    templates = template_set_read(templates_directory(directory))
    by_version = templates.by_version
    alias = settings.TENANT_DB_ALIAS
    with transaction.atomic(using=alias):
        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [schema_lock_key(schema)])
        rows = list(TemplateApplication.objects.using(alias).select_for_update().filter(schema_name=schema))
        applied = {r.version for r in rows if r.success}
        cleared = [r for r in rows if not r.success and r.version not in applied]
        updated: list[dict[str, Any]] = []
        for row in rows:
            template = by_version.get(row.version)
            if row.success and template is not None and template.checksum != row.checksum:
                updated.append({"version": row.version, "old": row.checksum, "new": template.checksum})
                row.checksum = template.checksum
                row.filename, row.description = template.filename, template.description
                row.full_clean()
                row.save(using=alias, update_fields=["checksum", "filename", "description"])
        cleared_info = [
            {"version": r.version, "filename": r.filename, "error": r.error, "applied_at": r.applied_at}
            for r in cleared
        ]
        TemplateApplication.objects.using(alias).filter(pk__in=[r.pk for r in cleared]).delete()
    result = RepairResult(schema=schema, failures_cleared=cleared_info, checksums_updated=updated)
    audit_record(
        action="tenant_sql.repair",
        actor=actor or Actor.system("tenant_sql"),
        target_type="tenant_sql.schema",
        target_id=schema,
        target_repr=schema,
        before={"failures": cleared_info, "checksums": {u["version"]: u["old"] for u in updated}},
        after={"checksums": {u["version"]: u["new"] for u in updated}},
        message=f"{len(cleared_info)} failure record(s) cleared, {len(updated)} checksum(s) updated",
    )
    return result
