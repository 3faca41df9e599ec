"""mssql-django's schema editor without a SQL Server.

The editor produces T-SQL in ``collect_sql`` mode once the wrapper knows the server version and edition
and the editor is not atomic. What it cannot do offline is ask the server for the names of existing
constraints (``AlterField``, ``RemoveField``, dropping a column default...). Many of those names are chosen
by SQL Server itself (``PK__…``, ``UQ__…``, ``DF__…``, unnamed checks), so no offline tool can know them.

So the introspection here answers from the migration project state: it lists the constraints mssql-django
would have created for the model as it stands before the operation, under *runtime names*. When the editor
then emits ``ALTER TABLE … DROP CONSTRAINT [runtime name]`` or ``DROP INDEX [runtime name] ON …``, the
statement is replaced by T-SQL that finds the real name in the catalog views when the script runs (the
same lookup Django's live introspection does) and fails the script if it is not there. Anything else that
would need the live database raises :class:`OfflineUnsupported`, which the exporter reports by name.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone
from mssql.base import DatabaseWrapper as MssqlDatabaseWrapper
from mssql.introspection import DatabaseIntrospection as MssqlIntrospection
from mssql.schema import DatabaseSchemaEditor as MssqlSchemaEditor

# The oldest server the generated scripts are written for: the runtime constraint lookups use STRING_AGG.
SQL_SERVER_VERSION = 2019
RUNTIME_NAME_PREFIX = "gcrt_"
_RUNTIME_RE = re.compile(r"\[(" + RUNTIME_NAME_PREFIX + r"\d+)\]")
_DROP_CONSTRAINT_RE = re.compile(
    r"^\s*ALTER TABLE (\[[^\]]+\]) DROP CONSTRAINT \[(" + RUNTIME_NAME_PREFIX + r"\d+)\];?\s*$"
)
_DROP_INDEX_RE = re.compile(r"^\s*DROP INDEX \[(" + RUNTIME_NAME_PREFIX + r"\d+)\] ON (\[[^\]]+\]);?\s*$")


class OfflineUnsupported(Exception):
    """An operation needs the live database to generate its T-SQL."""


@dataclass(frozen=True)
class RuntimeName:
    """A constraint whose real name is looked up on the server when the script runs."""

    kind: str  # primary key | unique | index | foreign key | check | default
    table: str
    columns: tuple[str, ...]

    def describe(self) -> str:
        return f"{self.kind} on [{self.table}] ({', '.join(self.columns)})"


def tsql_literal(text: str) -> str:
    """``text`` as a T-SQL Unicode string literal (N'…', quotes doubled)."""
    return "N'" + text.replace("'", "''") + "'"


def _columns_match(columns: tuple[str, ...]) -> str:
    """A predicate on ``i`` (sys.indexes): its key columns are exactly ``columns``, in order."""
    return (
        "(SELECT STRING_AGG(c.name, N',') WITHIN GROUP (ORDER BY ic.key_ordinal) FROM sys.index_columns AS ic "
        "INNER JOIN sys.columns AS c ON c.object_id = ic.object_id AND c.column_id = ic.column_id "
        "WHERE ic.object_id = i.object_id AND ic.index_id = i.index_id AND ic.is_included_column = 0) = "
        + tsql_literal(",".join(columns))
    )


def runtime_lookup_sql(name: RuntimeName) -> str:
    """A SELECT that sets @name (and @is_constraint: 1 for a table constraint, 0 for an index)."""
    table = tsql_literal(f"[{name.table}]")
    column = tsql_literal(name.columns[0]) if name.columns else "NULL"
    if name.kind == "primary key":
        return (
            "SELECT TOP (1) @name = kc.name, @is_constraint = 1 FROM sys.key_constraints AS kc "
            f"WHERE kc.parent_object_id = OBJECT_ID({table}) AND kc.type = 'PK';"
        )
    if name.kind in {"unique", "index"}:
        unique = 1 if name.kind == "unique" else 0
        return (
            "SELECT TOP (1) @name = i.name, @is_constraint = i.is_unique_constraint FROM sys.indexes AS i "
            f"WHERE i.object_id = OBJECT_ID({table}) AND i.is_primary_key = 0 AND i.is_unique = {unique} "
            f"AND {_columns_match(name.columns)};"
        )
    if name.kind == "foreign key":
        return (
            "SELECT TOP (1) @name = fk.name, @is_constraint = 1 FROM sys.foreign_keys AS fk "
            "INNER JOIN sys.foreign_key_columns AS fkc ON fkc.constraint_object_id = fk.object_id "
            f"WHERE fk.parent_object_id = OBJECT_ID({table}) "
            f"AND COL_NAME(fkc.parent_object_id, fkc.parent_column_id) = {column};"
        )
    catalog = {"check": "sys.check_constraints", "default": "sys.default_constraints"}[name.kind]
    return (
        f"SELECT TOP (1) @name = k.name, @is_constraint = 1 FROM {catalog} AS k "
        f"WHERE k.parent_object_id = OBJECT_ID({table}) "
        f"AND COL_NAME(k.parent_object_id, k.parent_column_id) = {column};"
    )


def runtime_drop_sql(name: RuntimeName, *, quoted_table: str, context: str) -> str:
    """T-SQL that drops the constraint or index ``name`` stands for, or stops the script if it is missing."""
    missing = (
        f"{context}: the {name.describe()} this script drops does not exist; "
        "the database is not in the state this script expects. Nothing was changed."
    )
    drop_constraint = tsql_literal(f"ALTER TABLE {quoted_table} DROP CONSTRAINT ")
    drop_index = tsql_literal("DROP INDEX ")
    on_table = tsql_literal(f" ON {quoted_table}")
    return "\n".join(
        [
            "DECLARE @name sysname, @is_constraint bit, @sql nvarchar(max);",
            runtime_lookup_sql(name),
            "IF @name IS NULL",
            "BEGIN",
            "    ROLLBACK TRANSACTION;",
            f"    RAISERROR ({tsql_literal(missing)}, 16, 1);",
            "    RETURN;",
            "END;",
            f"SET @sql = CASE WHEN @is_constraint = 1 THEN {drop_constraint} + QUOTENAME(@name) "
            f"ELSE {drop_index} + QUOTENAME(@name) + {on_table} END;",
            "EXECUTE sp_executesql @sql;",
        ]
    )


@dataclass(frozen=True)
class ServerDefault:
    """A column default computed by SQL Server where Django would compute it in Python at migrate time."""

    sql: str


@dataclass(frozen=True)
class PythonDefault:
    """A callable default with no SQL Server equivalent: rendering it fails the export by name."""

    path: str


# Callable defaults written as the server-side expression that gives the same value when the script runs
# (rather than the time of the export, which would make scripts differ on every run).
SERVER_DEFAULTS: dict[Any, str] = {timezone.now: "SYSDATETIMEOFFSET()"}


class OfflineCursor:
    """Stands in for a cursor: answers the one catalog query mssql-django asks that has a state answer."""

    def __init__(self) -> None:
        self._row: Any = None

    def __enter__(self) -> OfflineCursor:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def execute(self, sql: str, params: Any = None) -> None:
        # `_delete_unique_sql` asks whether a conditional unique constraint is a table CONSTRAINT; Django
        # creates conditional/covering unique constraints as indexes, so the answer is "no row".
        if "INFORMATION_SCHEMA.CONSTRAINT_COLUMN_USAGE" in sql:
            self._row = None
            return
        raise OfflineUnsupported(f"it needs the live database to answer: {' '.join(sql.split())[:120]}")

    def fetchone(self) -> Any:
        return self._row

    def fetchall(self) -> list[Any]:
        return []

    def close(self) -> None:
        return None


def _info(columns: list[str], **flags: Any) -> dict[str, Any]:
    base = {
        "columns": columns,
        "primary_key": False,
        "unique": False,
        "unique_constraint": False,
        "foreign_key": None,
        "check": False,
        "index": False,
        "default": False,
        "type": None,
    }
    return base | flags


def _q_columns(model: type[models.Model], node: Any) -> list[str]:
    """Columns a Q condition refers to (first part of each lookup)."""
    opts: Any = model._meta
    names = {f.name: f.column for f in opts.concrete_fields} | {f.attname: f.column for f in opts.concrete_fields}
    found: list[str] = []
    for child in getattr(node, "children", []):
        if isinstance(child, tuple):
            column = names.get(child[0].split("__")[0])  # None for annotations and expressions
            if column and column not in found:
                found.append(column)
        else:
            found.extend(c for c in _q_columns(model, child) if c not in found)
    return found


class StateIntrospection(MssqlIntrospection):
    """Answers ``get_constraints`` from the migration state the exporter sets on the connection."""

    connection: OfflineDatabaseWrapper

    def get_constraints(self, cursor: Any, table_name: str) -> dict[str, dict[str, Any]]:
        model = self.connection.state_model(table_name)
        editor = self.connection.current_editor
        assert editor is not None
        opts: Any = model._meta
        result: dict[str, dict[str, Any]] = {}

        def runtime(kind: str, columns: list[str], **flags: Any) -> None:
            result[editor.runtime_name(RuntimeName(kind, table_name, tuple(columns)))] = _info(columns, **flags)

        if opts.pk is not None and getattr(opts.pk, "column", None):
            runtime("primary key", [opts.pk.column], primary_key=True, unique=True)
        for field in opts.local_concrete_fields:
            column = field.column
            if field.primary_key:
                continue
            if field.unique:
                if field.null:  # mssql-django: a filtered unique index, so several NULLs are allowed
                    runtime("unique", [column], unique=True, index=True, type=models.Index.suffix)
                else:
                    runtime("unique", [column], unique=True, unique_constraint=True)
            elif field.db_index:
                runtime("index", [column], index=True, type=models.Index.suffix)
            if field.remote_field is not None and getattr(field, "db_constraint", False):
                target = field.remote_field.model._meta
                to_column = target.get_field(field.remote_field.field_name).column
                runtime("foreign key", [column], foreign_key=(target.db_table, to_column))
            if field.db_parameters(connection=self.connection)["check"]:
                runtime("check", [column], check=True)
            if getattr(field, "db_default", models.NOT_PROVIDED) is not models.NOT_PROVIDED:
                runtime("default", [column], default=True)
        for field_names in opts.unique_together:
            columns = [opts.get_field(name).column for name in field_names]
            runtime("unique", columns, unique=True, index=True, type=models.Index.suffix)
        for index in opts.indexes:
            columns = [opts.get_field(name).column for name, _ in index.fields_orders]
            result[index.name] = _info(columns, index=True, type=models.Index.suffix)
        for constraint in opts.constraints:
            if isinstance(constraint, models.UniqueConstraint):
                columns = [opts.get_field(name).column for name in constraint.fields]
                as_index = bool(
                    constraint.condition
                    or getattr(constraint, "include", None)
                    or getattr(constraint, "opclasses", None)
                )
                result[constraint.name] = _info(
                    columns, unique=True, unique_constraint=not as_index, index=as_index, type=models.Index.suffix
                )
            elif isinstance(constraint, models.CheckConstraint):
                result[constraint.name] = _info(_q_columns(model, constraint.condition), check=True)
        return result


class OfflineSchemaEditor(MssqlSchemaEditor):
    """mssql-django's editor, collecting statements; constraint names it needs are resolved at run time."""

    connection: OfflineDatabaseWrapper

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.runtime_names: dict[str, RuntimeName] = {}
        self._counter: Iterator[int] = itertools.count(1)
        self.statements: list[tuple[str, str]] = []  # (kind, sql): kind is "ddl" or "sql" (RunSQL, verbatim)
        self.statement_kind = "ddl"
        self.context = ""

    def __enter__(self) -> OfflineSchemaEditor:
        super().__enter__()
        self.connection.current_editor = self
        return self

    def __exit__(self, exc_type: Any, exc_value: Any, traceback: Any) -> None:
        # mssql-django keeps deferred statements in a set-derived list: sort them so exports are reproducible.
        if exc_type is None:
            self.deferred_sql: list[Any] = sorted(self.deferred_sql, key=str)
            self.statement_kind = "ddl"
        try:
            super().__exit__(exc_type, exc_value, traceback)
        finally:
            self.connection.current_editor = None

    def effective_default(self, field: Any) -> Any:
        if field.has_default() and callable(field.default):
            if field.default in SERVER_DEFAULTS:
                return ServerDefault(SERVER_DEFAULTS[field.default])
            return PythonDefault(f"{field.default.__module__}.{field.default.__qualname__}")
        if not field.has_default() and (getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False)):
            # Django would use the time of `migrate`; the script uses the time it runs.
            internal_type = field.get_internal_type()
            if internal_type == "DateTimeField":
                return ServerDefault("SYSDATETIMEOFFSET()" if settings.USE_TZ else "SYSDATETIME()")
            return ServerDefault(
                "CAST(SYSDATETIME() AS date)" if internal_type == "DateField" else "CAST(SYSDATETIME() AS time)"
            )
        return super().effective_default(field)

    def quote_value(self, value: Any) -> str:
        if isinstance(value, ServerDefault):
            return value.sql
        if isinstance(value, PythonDefault):
            raise OfflineUnsupported(
                f"the column default comes from Python ({value.path}) and is evaluated when the migration runs; "
                "give the field a db_default or a literal default in this migration"
            )
        return str(super().quote_value(value))

    def runtime_name(self, name: RuntimeName) -> str:
        token = f"{RUNTIME_NAME_PREFIX}{next(self._counter)}"
        self.runtime_names[token] = name
        return token

    def execute(self, sql: Any, params: Any = (), has_result: bool = False) -> Any:
        text = str(sql)
        if params is not None:
            text = text % tuple(map(self.quote_value, params))
        if has_result:
            # The one result query mssql-django runs: the name of a column's DEFAULT constraint.
            match = re.search(r"t\.name = '([^']+)' AND\s+c\.name = '([^']+)'", text)
            if "sys.default_constraints" not in text or match is None:
                raise OfflineUnsupported(f"it needs the live database to answer: {' '.join(text.split())[:120]}")
            return [(self.runtime_name(RuntimeName("default", match.group(1), (match.group(2),))),)]
        self.statements.append((self.statement_kind, self._resolve_runtime_names(text)))
        self.collected_sql.append(text)
        return None

    def _resolve_runtime_names(self, text: str) -> str:
        if not _RUNTIME_RE.search(text):
            return text
        if match := _DROP_CONSTRAINT_RE.match(text):
            quoted_table, token = match.group(1), match.group(2)
        elif match := _DROP_INDEX_RE.match(text):
            token, quoted_table = match.group(1), match.group(2)
        else:
            names = ", ".join(self.runtime_names[t].describe() for t in _RUNTIME_RE.findall(text))
            raise OfflineUnsupported(f"it refers to the server-chosen name of the {names} in: {text.strip()[:160]}")
        return runtime_drop_sql(self.runtime_names[token], quoted_table=quoted_table, context=self.context)


class OfflineDatabaseWrapper(MssqlDatabaseWrapper):
    """An mssql-django connection that never connects."""

    SchemaEditorClass = OfflineSchemaEditor
    introspection_class = StateIntrospection
    sql_server_version = SQL_SERVER_VERSION
    to_azure_sql_db = False

    def __init__(self) -> None:
        settings_dict: dict[str, Any] = {
            "ENGINE": "mssql",
            "NAME": "ghostcrm_main",
            "USER": "",
            "PASSWORD": "",
            "HOST": "",
            "PORT": "",
            "OPTIONS": {},
            "TIME_ZONE": None,
            "CONN_MAX_AGE": 0,
            "CONN_HEALTH_CHECKS": False,
            "AUTOCOMMIT": True,
            "ATOMIC_REQUESTS": False,
            "TEST": {},
        }
        # The alias is `default` so the database router routes operations exactly as `migrate` would.
        super().__init__(settings_dict, alias="default")
        self.state_apps: Any = None
        self.current_editor: OfflineSchemaEditor | None = None
        if not settings.USE_TZ:  # mssql-django switches DateTimeField to datetimeoffset only with USE_TZ
            self.data_types: dict[str, str] = dict(MssqlDatabaseWrapper.data_types) | {"DateTimeField": "datetime2"}

    def state_model(self, table_name: str) -> type[models.Model]:
        if self.state_apps is not None:
            for model in self.state_apps.get_models(include_auto_created=True):
                if model._meta.db_table == table_name:
                    return model
        raise OfflineUnsupported(f"it needs the constraints of table {table_name!r}, which the state does not know")

    def ensure_connection(self) -> None:
        raise OfflineUnsupported("it needs a connection to SQL Server")

    def cursor(self) -> Any:
        return OfflineCursor()

    def _cursor(self, name: Any = None) -> Any:
        raise OfflineUnsupported("it needs a connection to SQL Server")
