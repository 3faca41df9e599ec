"""Applying templates to one schema (provisioning) or to many (``tenant_sql apply``), audited.

Each worker is a ``SchemaApplier`` with its own two connections; a schema that fails does not stop the
others, and re-running resumes where each schema stopped.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import psycopg

from ghostcrm.audit.services import Actor, audit_record
from ghostcrm.core.errors import TransientError, ValidationError
from ghostcrm.core.system_settings import setting_value
from tenants.engine import connection
from tenants.engine.apply import SchemaApplier, Timeouts, template_set_for_apply
from tenants.engine.ledger import SchemaState, schema_states
from tenants.engine.naming import schema_name_check, scratch_tenant_id
from tenants.engine.registry import registered_schemas, tenant_ids_for
from tenants.engine.results import ApplyResult, ApplyTarget, RolloutResult, TemplateApplyError
from tenants.engine.schemas import schema_create


class UnregisteredSchemas(ValidationError):
    """Schemas named for a rollout that are not registered tenants (and no scratch schemas were asked for)."""

    code = "unregistered_schema"


def default_timeouts() -> Timeouts:
    """Every file's ``lock_timeout`` and ``statement_timeout`` unless its headers say otherwise (system settings)."""
    return Timeouts(
        lock=f"{int(setting_value('tenant_sql.lock_timeout_ms'))}ms",
        statement=f"{int(setting_value('tenant_sql.statement_timeout_ms'))}ms",
    )


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
    applier = SchemaApplier(templates=templates, applied_by=applied_by, timeouts=default_timeouts())
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
    if result.lock_timeout is not None:
        raise TransientError(
            f"{result.lock_timeout.filename} waited longer than lock_timeout {result.lock_timeout.lock_timeout}"
            f" in schema {schema}; it is retried later."
        )
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


def rollout_targets(
    *, schemas: Sequence[str] | None, create_schema: bool = False, directory: Path | None = None, actor: Actor
) -> list[ApplyTarget]:
    """The targets of a rollout: every registered tenant (``schemas=None``) or the named schemas.

    A named schema that is not a registered tenant is refused, unless ``create_schema``: then it is created
    with its roles exactly as provisioning does, once the template set is known to be sound.
    """
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


def _initial_states(targets: Sequence[ApplyTarget]) -> dict[str, SchemaState]:
    if not targets:
        return {}
    conn = connection.engine_connect()
    try:
        return schema_states(conn, [t.schema for t in targets])
    except psycopg.OperationalError as exc:
        raise TransientError(f"Reading the tenants' ledger failed, the connection was lost: {exc}") from exc
    finally:
        conn.close()


def _run_workers(
    *, targets: Sequence[ApplyTarget], workers: int, make_applier: Callable[[], SchemaApplier],
    on_result: Callable[[ApplyResult], None] | None,
) -> list[ApplyResult]:  # fmt: skip
    work: queue.SimpleQueue[ApplyTarget | None] = queue.SimpleQueue()
    for target in targets:
        work.put(target)
    for _ in range(workers):
        work.put(None)
    results: list[ApplyResult] = []
    results_lock = threading.Lock()

    def worker() -> None:
        applier = make_applier()
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
    return results


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
    """Apply pending templates to many schemas, ``jobs`` at a time, each worker with its own connections.

    A schema that fails does not stop the others; re-running resumes where each schema stopped. One audit
    event covers the run (the ledger holds the per-schema, per-file record).
    """
    for target in targets:
        schema_name_check(target.schema)
    if jobs < 1:
        raise ValidationError("--jobs must be at least 1.", code="invalid_jobs")
    templates = template_set_for_apply(directory)
    every = int(setting_value("tenant_sql.recycle_every")) if recycle_every is None else recycle_every
    started = time.monotonic()
    states = _initial_states(targets)
    timeouts = default_timeouts()

    def make_applier() -> SchemaApplier:
        applier = SchemaApplier(templates=templates, applied_by=applied_by, recycle_every=every, timeouts=timeouts)
        applier.states = states
        return applier

    workers = max(1, min(jobs, len(targets)))
    results = _run_workers(targets=targets, workers=workers, make_applier=make_applier, on_result=on_result)
    rollout = RolloutResult(
        directory=str(templates.directory), jobs=workers, results=results,
        duration_ms=int((time.monotonic() - started) * 1000),
    )  # fmt: skip
    _audit_rollout(rollout, actor=actor)
    return rollout


def _audit_rollout(rollout: RolloutResult, *, actor: Actor | None) -> None:
    summary = rollout.summary()
    if not (summary["applied"] or summary["failed"] or summary["lock_timeout"]):
        return
    audit_record(
        action="tenant_sql.rollout",
        actor=actor or Actor.system("tenant_sql"),
        target_type="tenant_sql.rollout",
        target_repr=f"{summary['schemas']} schema(s)",
        after={
            "directory": rollout.directory,
            "summary": summary,
            "applied": {r.schema: [a.version for a in r.applied] for r in rollout.results if r.applied},
            "failed": {r.schema: (r.failed.filename if r.failed else r.error) for r in rollout.failed},
            "lock_timeout": {r.schema: r.lock_timeout.filename for r in rollout.lock_timeouts if r.lock_timeout},
        },
        outcome="success" if not (summary["failed"] or summary["lock_timeout"]) else "failure",
        message=f"{summary['files_applied']} file(s) applied, {summary['failed']} schema(s) failed, "
        f"{summary['lock_timeout']} lock timeout(s)",
        duration_ms=rollout.duration_ms,
    )
