"""Per-statement lint rules: each yields ``(node, rule, message)`` for one parsed statement.

The rules that concern privileges or leaving the tenant's schema (``role-switch``, ``hard-coded-schema``,
``extension``, ``privilege``, ``dynamic-sql``) are refusals: ``apply`` does not run a file they flag. They
are a second line: the first is that templates run as a login that cannot do more than the tenant's owner.
"""

from __future__ import annotations

from collections.abc import Iterator

from pglast import ast

from tenants.engine.sqlast import constant_string, enum_name, names, walk

SYSTEM_SCHEMAS = frozenset({"pg_catalog", "information_schema"})
OWNER_STAND_IN = "owner_role"  # what ``${owner_role}`` renders to while linting
Finding = tuple[ast.Node, str, str]

NON_TRANSACTIONAL = {
    "VacuumStmt": "VACUUM/ANALYZE cannot run inside a transaction",
    "CreatedbStmt": "CREATE DATABASE cannot run inside a transaction",
    "DropdbStmt": "DROP DATABASE cannot run inside a transaction",
    "AlterSystemStmt": "ALTER SYSTEM cannot run inside a transaction",
    "CreateTableSpaceStmt": "CREATE TABLESPACE cannot run inside a transaction",
    "DropTableSpaceStmt": "DROP TABLESPACE cannot run inside a transaction",
}
# Statements a tenant's template has no business running: they act on the cluster, not the schema.
PRIVILEGED_STATEMENTS = {
    "AlterRoleStmt": "ALTER ROLE changes a cluster-wide role",
    "AlterRoleSetStmt": "ALTER ROLE ... SET changes a cluster-wide role",
    "CreateRoleStmt": "CREATE ROLE/USER creates a cluster-wide role",
    "DropRoleStmt": "DROP ROLE drops a cluster-wide role",
    "GrantRoleStmt": "GRANT/REVOKE of a role changes role membership",
    "AlterSystemStmt": "ALTER SYSTEM changes the server's configuration",
    "LoadStmt": "LOAD loads a shared library into the server",
    "CreatedbStmt": "CREATE DATABASE acts on the cluster",
    "DropdbStmt": "DROP DATABASE acts on the cluster",
    "AlterDatabaseStmt": "ALTER DATABASE acts on the whole database",
    "AlterDatabaseSetStmt": "ALTER DATABASE ... SET acts on the whole database",
    "CreateTableSpaceStmt": "tablespaces are cluster-wide",
    "DropTableSpaceStmt": "tablespaces are cluster-wide",
    "CreatePLangStmt": "CREATE LANGUAGE is database-wide",
    "CreateEventTrigStmt": "event triggers are database-wide",
    "ReassignOwnedStmt": "REASSIGN OWNED acts on every schema",
    "DropOwnedStmt": "DROP OWNED acts on every schema",
    "CreateSubscriptionStmt": "subscriptions connect to other servers",
    "CreatePublicationStmt": "publications are database-wide",
    "CreateUserMappingStmt": "user mappings hold credentials for other servers",
}
PRIVILEGED_FUNCTIONS = frozenset(
    {
        "pg_read_file", "pg_read_binary_file", "pg_ls_dir", "pg_stat_file", "pg_ls_logdir", "pg_ls_waldir",
        "pg_ls_tmpdir", "pg_ls_archive_statusdir", "lo_import", "lo_export", "pg_file_write", "pg_file_rename",
        "pg_file_unlink", "pg_logdir_ls", "pg_terminate_backend", "pg_cancel_backend", "pg_reload_conf",
        "pg_rotate_logfile", "pg_promote", "pg_signal_backend", "dblink", "dblink_exec", "dblink_connect",
        "dblink_connect_u", "dblink_send_query", "dblink_open", "dblink_fetch",
    }
)  # fmt: skip
# Functions that run a SQL string given as an argument: dynamic SQL by another name.
DYNAMIC_FUNCTIONS = frozenset(
    {"query_to_xml", "query_to_xmlschema", "query_to_xml_and_xmlschema", "cursor_to_xml", "cursor_to_xmlschema"}
)
SECRET_RELATIONS = frozenset({"pg_authid", "pg_shadow", "pg_user_mapping", "pg_user_mappings", "pg_largeobject"})
ROLE_SETTINGS = frozenset({"role", "session_authorization"})


def non_transactional(stmt: ast.Node) -> str | None:
    """Why ``stmt`` cannot run inside a transaction block, or None: the one detector of such statements."""
    kind = type(stmt).__name__
    if kind in NON_TRANSACTIONAL:
        return NON_TRANSACTIONAL[kind]
    if isinstance(stmt, ast.IndexStmt) and stmt.concurrent:
        return "CREATE INDEX CONCURRENTLY cannot run inside a transaction"
    if isinstance(stmt, ast.DropStmt) and stmt.concurrent:
        return "DROP INDEX CONCURRENTLY cannot run inside a transaction"
    if isinstance(stmt, ast.ReindexStmt) and any(
        isinstance(p, ast.DefElem) and p.defname == "concurrently" for p in stmt.params or ()
    ):
        return "REINDEX CONCURRENTLY cannot run inside a transaction"
    if isinstance(stmt, ast.AlterTableStmt):
        for cmd in stmt.cmds or ():
            if isinstance(cmd, ast.AlterTableCmd) and isinstance(cmd.def_, ast.PartitionCmd) and cmd.def_.concurrent:
                return "DETACH PARTITION CONCURRENTLY cannot run inside a transaction"
    return None


def _qualified_problem(parts: list[str], *, minimum: int = 2) -> str | None:
    if len(parts) >= minimum and parts[0] not in SYSTEM_SCHEMAS:
        return f"{'.'.join(parts)} names schema {parts[0]!r}; templates run under the tenant's search_path"
    return None


def _set_config_name(node: ast.FuncCall) -> str | None:
    """For a ``set_config(name, ...)`` call: the setting's name, ``""`` when it is computed; else None."""
    parts = names(node.funcname)
    if not parts or parts[-1].lower() != "set_config" or not node.args:
        return None
    return (constant_string(node.args[0]) or "").lower()


# Node types whose qualified name is one attribute: (attribute, parts that make it schema-qualified).
QUALIFIED_NAMES: dict[type[ast.Node], tuple[str, int]] = {
    ast.FuncCall: ("funcname", 2),
    ast.TypeName: ("names", 2),
    ast.ObjectWithArgs: ("objname", 2),
    ast.CreateFunctionStmt: ("funcname", 2),
    ast.CreateTrigStmt: ("funcname", 2),
    ast.DefineStmt: ("defnames", 2),
    ast.CreateDomainStmt: ("domainname", 2),
    ast.CreateEnumStmt: ("typeName", 2),
    ast.AlterEnumStmt: ("typeName", 2),
    ast.ColumnRef: ("fields", 3),
}


def _special_schema_problem(node: ast.Node) -> str | None:
    """Schema names that are not one qualified-name attribute."""
    message: str | None = None
    if isinstance(node, ast.RangeVar) and node.schemaname and node.schemaname not in SYSTEM_SCHEMAS:
        message = f"{node.schemaname}.{node.relname} names schema {node.schemaname!r}"
    elif isinstance(node, ast.VariableSetStmt) and (node.name or "").lower() == "search_path":
        message = "SET search_path: the engine sets the search_path (SET LOCAL, tenant schema only)"
    elif isinstance(node, ast.FuncCall) and _set_config_name(node) == "search_path":
        message = "set_config('search_path', ...): the engine sets the search_path (SET LOCAL, tenant schema only)"
    elif isinstance(node, ast.DropStmt):
        for obj in node.objects or ():
            message = message or _qualified_problem(names(obj))
    elif isinstance(node, ast.CommentStmt):
        minimum = 3 if enum_name(node.objtype) == "OBJECT_COLUMN" else 2
        message = _qualified_problem(names(node.object), minimum=minimum)
    elif isinstance(node, ast.GrantStmt) and (
        enum_name(node.targtype) == "ACL_TARGET_ALL_IN_SCHEMA" or enum_name(node.objtype) == "OBJECT_SCHEMA"
    ):
        message = f"GRANT names schema(s) {', '.join(names(node.objects))}"
    elif isinstance(node, ast.AlterDefaultPrivilegesStmt):
        for option in node.options or ():
            if isinstance(option, ast.DefElem) and option.defname == "schemas":
                message = f"ALTER DEFAULT PRIVILEGES IN SCHEMA {', '.join(names(option.arg))}"
    return message


def _node_schema_problem(node: ast.Node) -> str | None:
    message = _special_schema_problem(node)
    if message is None and type(node) in QUALIFIED_NAMES:
        attribute, minimum = QUALIFIED_NAMES[type(node)]
        message = _qualified_problem(names(getattr(node, attribute, None)), minimum=minimum)
    return message


def schema_problems(stmt: ast.Node) -> Iterator[Finding]:
    """``hard-coded-schema``: every place one statement names a schema or sets the search_path."""
    if isinstance(stmt, ast.CreateSchemaStmt):
        yield stmt, "hard-coded-schema", "CREATE SCHEMA: the engine creates the tenant's schema"
    for node in walk(stmt):
        message = _node_schema_problem(node)
        if message:
            yield node, "hard-coded-schema", message


def role_problems(stmt: ast.Node) -> Iterator[Finding]:
    """``role-switch``: SET/RESET ROLE, SET SESSION AUTHORIZATION, set_config of either (any argument)."""
    for node in walk(stmt):
        if isinstance(node, ast.VariableSetStmt) and (node.name or "").lower() in ROLE_SETTINGS:
            yield node, "role-switch", "SET/RESET ROLE or SESSION AUTHORIZATION: the engine chooses the role"
        elif isinstance(node, ast.FuncCall):
            setting = _set_config_name(node)
            if setting in ROLE_SETTINGS:
                yield node, "role-switch", f"set_config('{setting}', ...): the engine chooses the role"
            elif setting == "":
                yield node, "role-switch", "set_config with a computed setting name could switch the role"


def _owner_change(node: ast.Node) -> str | None:
    """The new owner of an ``ALTER ... OWNER TO`` that gives an object to another role than the tenant's."""
    changes_owner = isinstance(node, ast.AlterTableCmd) and enum_name(node.subtype) == "AT_ChangeOwner"
    newowner = getattr(node, "newowner", None) if isinstance(node, ast.AlterOwnerStmt) or changes_owner else None
    if not isinstance(newowner, ast.RoleSpec):
        return None
    name = newowner.rolename or enum_name(newowner.roletype)
    return None if name == OWNER_STAND_IN else name


def _node_privilege_problem(node: ast.Node) -> str | None:
    kind = type(node).__name__
    if kind in PRIVILEGED_STATEMENTS:
        return PRIVILEGED_STATEMENTS[kind]
    if isinstance(node, ast.CopyStmt) and node.is_program:
        return "COPY ... PROGRAM runs an operating-system command on the database server"
    if isinstance(node, ast.CopyStmt) and node.filename:
        return "COPY to or from a server file reads or writes the database server's disk"
    if isinstance(node, ast.FuncCall) and (names(node.funcname) or [""])[-1].lower() in PRIVILEGED_FUNCTIONS:
        return f"{names(node.funcname)[-1]}() reaches outside the schema (files, other sessions or servers)"
    if isinstance(node, ast.RangeVar) and (node.relname or "").lower() in SECRET_RELATIONS:
        return f"{node.relname} holds other roles' secrets"
    new_owner = _owner_change(node)
    if new_owner is not None:
        return f"OWNER TO {new_owner}: objects (and SECURITY DEFINER functions) stay owned by ${{owner_role}}"
    return None


def privilege_problems(stmt: ast.Node) -> Iterator[Finding]:
    """``privilege``: statements and functions that act beyond the tenant's schema, and ``extension``."""
    if isinstance(stmt, ast.CreateExtensionStmt):
        yield stmt, "extension", "extensions are database-wide: install them once, not per tenant"
    for node in walk(stmt):
        message = _node_privilege_problem(node)
        if message:
            yield node, "privilege", message
        if isinstance(node, ast.FuncCall) and (names(node.funcname) or [""])[-1].lower() in DYNAMIC_FUNCTIONS:
            yield node, "dynamic-sql", f"{names(node.funcname)[-1]}() runs a SQL string"


def statement_problems(stmt: ast.Node) -> Iterator[Finding]:
    """The rules that apply to any statement, top level or inside a function body."""
    if isinstance(stmt, ast.TransactionStmt):
        yield stmt, "transaction-control", "BEGIN/COMMIT/ROLLBACK/SAVEPOINT: the engine runs each file's transaction"
    yield from role_problems(stmt)
    yield from schema_problems(stmt)
    yield from privilege_problems(stmt)
