"""The template engine's writes, re-exported from the modules that hold them (callers move over time).

- ``tenants.engine.naming``: schema names, tenant roles, the migrator login, lock keys;
- ``tenants.engine.schemas``: the privileged path (roles, schemas, the migrator login);
- ``tenants.engine.apply`` and ``tenants.engine.rollout``: applying templates, as the migrator;
- ``tenants.engine.repair``: ``tenant_sql repair``.
"""

from __future__ import annotations

from tenants.engine.apply import RETRYABLE_SQLSTATES, SchemaApplier, template_set_for_apply
from tenants.engine.connection import APPLICATION_NAME, engine_connect, migrator_connect
from tenants.engine.ledger import SchemaState, schema_states
from tenants.engine.naming import (
    TenantRoles,
    migrator_role,
    schema_lock_key,
    schema_name_check,
    scratch_tenant_id,
    tenant_roles,
)
from tenants.engine.registry import tenant_ids_for
from tenants.engine.repair import RepairResult, schema_repair
from tenants.engine.results import (
    AppliedFile,
    ApplyResult,
    ApplyTarget,
    FailedFile,
    RolloutResult,
    TemplateApplyError,
)
from tenants.engine.rollout import UnregisteredSchemas, rollout_targets, schema_apply, schemas_apply
from tenants.engine.schemas import _schema_create_on, migrator_ensure, migrator_setup, schema_create, schema_drop
from tenants.engine.templates import templates_directory

__all__ = [
    "APPLICATION_NAME",
    "RETRYABLE_SQLSTATES",
    "AppliedFile",
    "ApplyResult",
    "ApplyTarget",
    "FailedFile",
    "RepairResult",
    "RolloutResult",
    "SchemaApplier",
    "SchemaState",
    "TemplateApplyError",
    "TenantRoles",
    "UnregisteredSchemas",
    "_schema_create_on",
    "engine_connect",
    "migrator_connect",
    "migrator_ensure",
    "migrator_role",
    "migrator_setup",
    "rollout_targets",
    "schema_apply",
    "schema_create",
    "schema_drop",
    "schema_lock_key",
    "schema_name_check",
    "schema_repair",
    "schema_states",
    "schemas_apply",
    "scratch_tenant_id",
    "template_set_for_apply",
    "templates_directory",
    "tenant_ids_for",
    "tenant_roles",
]
