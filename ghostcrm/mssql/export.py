"""The main database's Django migrations as numbered, idempotent T-SQL scripts for sqlcmd.

One script per Django migration, in dependency order, named ``NNN_<app>_<migration>.sql``. Numbers are
stable: a migration keeps the number it was first exported under (read back from the committed folder) and
new migrations are numbered after the highest existing one, so existing files never renumber.

Each script:
- creates ``django_migrations`` if it is missing (exactly the table Django's recorder creates);
- runs its statements in one transaction with ``XACT_ABORT ON``, one statement per ``GO`` batch, each batch
  guarded so it does nothing when the migration is already recorded or when an earlier error rolled the
  transaction back;
- records itself in ``django_migrations``, so ``manage.py migrate`` against that server sees it as applied;
- ends with an error if it was not recorded, so a failed run never looks like a success.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.apps import apps as global_apps
from django.db import router
from django.db.migrations import Migration
from django.db.migrations.graph import MigrationGraph
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.operations.base import Operation
from django.db.migrations.operations.special import RunPython, RunSQL, SeparateDatabaseAndState
from django.db.migrations.recorder import MigrationRecorder
from django.db.migrations.state import ProjectState

from ghostcrm.mssql.offline import OfflineDatabaseWrapper, OfflineUnsupported, tsql_literal

FILE_RE = re.compile(r"^(\d{3,})_(.+)\.sql$")
GENERATED_BY = "python manage.py export_tsql"

# RunPython operations that cannot be exported as SQL but have a documented equivalent: each works only on
# rows that a database built by these scripts does not have yet (permissions and content types are created
# afterwards, by the post_migrate step of `python manage.py migrate`; see the README in the scripts folder).
# Keyed by (app, migration, function); a changed function no longer matches and fails the export again.
DATA_ONLY_RUNPYTHON: dict[tuple[str, str, str], str] = {
    (
        "auth",
        "0011_update_proxy_permissions",
        "django.contrib.auth.migrations.0011_update_proxy_permissions.update_proxy_model_permissions",
    ): "re-points existing permissions of proxy models; auth_permission is empty until manage.py migrate "
    "creates permissions, and that creation already uses the proxy model's content type",
    (
        "axes",
        "0007_alter_accessattempt_unique_together",
        "axes.migrations.0007_alter_accessattempt_unique_together.deduplicate_attempts",
    ): "deletes duplicate access attempts before the unique index; a new axes_accessattempt table has none "
    "(on an upgraded database with duplicates the index creation fails and the script rolls back whole)",
    (
        "django_rq",
        "0003_alter_dashboard_permission_names",
        "django_rq.migrations.0003_alter_dashboard_permission_names.permission_migration.<locals>.migrate",
    ): "renames existing django-rq dashboard permissions; none exist until manage.py migrate creates them "
    "under the new names",
    (
        "audit",
        "0002_keyed_chain_unlocked_append_archives",
        "ghostcrm.audit.migrations.0002_keyed_chain_unlocked_append_archives.rekey_existing_chain",
    ): "re-seals audit events written before the chain was keyed; a database built by these scripts has none "
    "(an upgraded SQL Server database is migrated with manage.py migrate, which runs it)",
}


class ExportError(Exception):
    """The export cannot be written; the message names every migration and operation at fault."""


@dataclass
class Batch:
    comment: str
    sql: str
    verbatim: bool = False  # RunSQL: run through sp_executesql so it is compiled only when it runs


@dataclass
class MigrationScript:
    app: str
    name: str
    batches: list[Batch] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str]:
        return (self.app, self.name)

    def filename(self, number: int) -> str:
        return f"{number:03d}_{self.app}_{self.name}.sql"


def _function_path(function: Callable[..., Any]) -> str:
    return f"{function.__module__}.{function.__qualname__}"


def migration_plan(loader: MigrationLoader) -> list[tuple[str, str]]:
    """Every migration in dependency order, deterministically (what `migrate` would apply on a new database)."""
    plan: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for leaf in sorted(loader.graph.leaf_nodes()):
        for node in loader.graph.forwards_plan(leaf):
            if node not in seen:
                seen.add(node)
                plan.append(node)
    return plan


def _describe(operation: Operation) -> str:
    text = operation.describe()
    return " ".join(text.split())


class Exporter:
    """Generates the scripts for the whole plan (one pass over the migration graph, no connection)."""

    def __init__(self) -> None:
        self.connection = OfflineDatabaseWrapper()
        self.loader = MigrationLoader(None, ignore_no_migrations=True)
        self.problems: list[str] = []

    def scripts(self) -> list[MigrationScript]:
        self._check_unmigrated_apps()
        state = ProjectState(real_apps=self.loader.unmigrated_apps)
        result = []
        for key in migration_plan(self.loader):
            migration = self.loader.graph.nodes[key]
            script, state = self.export_migration(migration, state)
            result.append(script)
        self.raise_problems()
        return result

    def _check_unmigrated_apps(self) -> None:
        """Tables without migrations would be missing from the scripts (`migrate` skips them too)."""
        for label in sorted(self.loader.unmigrated_apps):
            for model in global_apps.get_app_config(label).get_models():
                if model._meta.managed and router.allow_migrate_model(self.connection.alias, model):
                    self.problems.append(
                        f"{model._meta.label}: a main-database model whose app has no migrations; "
                        f"run `python manage.py makemigrations {label}`"
                    )

    def raise_problems(self) -> None:
        if self.problems:
            raise ExportError(
                "These migrations cannot be written as T-SQL without a live SQL Server:\n  - "
                + "\n  - ".join(self.problems)
                + "\nWrite them as schema operations or RunSQL, mark a data-only RunPython elidable=True when a "
                "new database does not need it, or (for third-party migrations) document it in "
                "ghostcrm/mssql/export.py DATA_ONLY_RUNPYTHON."
            )

    def export_migration(self, migration: Migration, state: ProjectState) -> tuple[MigrationScript, ProjectState]:
        """The script of one migration applied on ``state``; problems are collected in ``self.problems``."""
        app, name = migration.app_label, migration.name
        script = MigrationScript(app, name)
        with self.connection.schema_editor(collect_sql=True, atomic=False) as editor:
            assert hasattr(editor, "statements")
            for operation in migration.operations:
                label = f"{app}.{name}: {_describe(operation)}"
                new_state = state.clone()
                operation.state_forwards(app, new_state)
                before = len(editor.statements)
                self._forwards(operation, app, editor, state, new_state, label, script)
                for kind, sql in editor.statements[before:]:
                    script.batches.append(Batch(label, sql, verbatim=kind == "sql"))
                state = new_state
            self.connection.state_apps = state.apps
            editor.context = f"{app}.{name}"
            before = len(editor.statements)
        for _kind, sql in editor.statements[before:]:
            script.batches.append(Batch(f"{app}.{name}: deferred indexes and foreign keys", sql))
        return script, state

    def _forwards(
        self,
        operation: Operation,
        app: str,
        editor: Any,
        state: ProjectState,
        new_state: ProjectState,
        label: str,
        script: MigrationScript,
    ) -> None:
        if isinstance(operation, SeparateDatabaseAndState):
            for inner in operation.database_operations:
                inner_state = state.clone()
                inner.state_forwards(app, inner_state)
                self._forwards(inner, app, editor, state, inner_state, label, script)
                state = inner_state
            return
        if isinstance(operation, RunPython):
            if not router.allow_migrate(self.connection.alias, app, **operation.hints):
                return
            path = _function_path(operation.code)
            if operation.code is RunPython.noop:
                script.notes.append(f"{_describe(operation)}: does nothing going forwards")
            elif operation.elidable:
                script.notes.append(f"{_describe(operation)} {path}: elidable, not needed on a new database")
            elif (app, script.name, path) in DATA_ONLY_RUNPYTHON:
                script.notes.append(f"RunPython {path}: {DATA_ONLY_RUNPYTHON[(app, script.name, path)]}")
            else:
                self.problems.append(f"{label} ({path}): Python code cannot be exported as SQL")
            return
        editor.statement_kind = "sql" if isinstance(operation, RunSQL) else "ddl"
        editor.context = label
        self.connection.state_apps = state.apps
        try:
            operation.database_forwards(app, editor, state, new_state)
        except OfflineUnsupported as exc:
            self.problems.append(f"{label}: {exc}")
        except NotImplementedError as exc:  # mssql-django refuses some alterations outright
            self.problems.append(f"{label}: mssql-django cannot do this ({exc})")
        finally:
            editor.statement_kind = "ddl"

    def django_migrations_table_sql(self) -> str:
        """The CREATE TABLE Django's recorder would run on SQL Server (through the same editor)."""
        with self.connection.schema_editor(collect_sql=True, atomic=False) as editor:
            editor.create_model(MigrationRecorder.Migration)
        assert hasattr(editor, "statements")
        statements = [sql for _kind, sql in editor.statements]
        if len(statements) != 1:
            raise ExportError(f"expected one statement for django_migrations, got {statements!r}")
        return statements[0]


# --- rendering -----------------------------------------------------------------------------------------


def applied_predicate(app: str, name: str) -> str:
    return f"SELECT 1 FROM [django_migrations] WHERE [app] = {tsql_literal(app)} AND [name] = {tsql_literal(name)}"


def batch_guard(app: str, name: str) -> str:
    """First lines of every statement batch: do nothing when already applied or after a failure.

    XACT_ABORT rolls the transaction back on run-time errors; a compile error only aborts its batch, so
    the next batch sees it in @@ERROR and rolls back itself. Either way @@TRANCOUNT is then 0 and every
    later batch returns at once, even when sqlcmd runs without -b.
    """
    return (
        "IF @@ERROR <> 0 AND @@TRANCOUNT > 0\nBEGIN\n    ROLLBACK TRANSACTION;\nEND;\n"
        f"IF @@TRANCOUNT = 0 OR EXISTS ({applied_predicate(app, name)})\nBEGIN\n    RETURN;\nEND;\n"
    )


def _check_sqlcmd_safe(text: str, where: str) -> None:
    """sqlcmd would misread these inside a statement: a GO line splits a batch, $(x) is a variable."""
    for line in text.splitlines():
        stripped = line.strip()
        if re.fullmatch(r"(?i)go(\s+\d+)?", stripped) or stripped.startswith((":", "!!")):
            raise ExportError(f"{where}: the line {line!r} would be read by sqlcmd as a command")
    if "$(" in text:
        raise ExportError(f"{where}: '$(' would be read by sqlcmd as a scripting variable")


def render(script: MigrationScript, number: int, *, migrations_table_sql: str) -> str:
    app, name = script.app, script.name
    label = f"{app}.{name}"
    out = [
        f"-- GhostCRM main database, script {number:03d}: Django migration {label}",
        f"-- Generated by `{GENERATED_BY}` from the Django migrations; do not edit, regenerate.",
        "-- Apply in numeric order with: sqlcmd -S <server> -d <database> -b -i <this file>",
        "-- Safe to run twice: every batch does nothing once the migration is recorded in django_migrations.",
    ]
    for note in script.notes:
        out.append(f"-- Not exported: {' '.join(note.split())}")
    if not script.batches:
        out.append("-- No schema change on the main database: the script only records the migration.")
    # Filtered indexes and the JSON checks (which quote with "column") need these session options, and
    # sqlcmd starts with QUOTED_IDENTIFIER OFF; QUOTED_IDENTIFIER applies from the next batch on.
    out += [
        "SET QUOTED_IDENTIFIER ON;",
        "SET ANSI_NULLS ON;",
        "SET ANSI_PADDING ON;",
        "SET ANSI_WARNINGS ON;",
        "SET ARITHABORT ON;",
        "SET CONCAT_NULL_YIELDS_NULL ON;",
        "SET NUMERIC_ROUNDABORT OFF;",
        "SET XACT_ABORT ON;",
        "SET NOCOUNT ON;",
        "GO",
        "IF OBJECT_ID(N'[django_migrations]', N'U') IS NULL",
        "BEGIN",
        f"    {migrations_table_sql.rstrip(';')};",
        "END;",
        f"IF EXISTS ({applied_predicate(app, name)})",
        "BEGIN",
        f"    RAISERROR ({tsql_literal(f'{label} is already applied: nothing to do.')}, 0, 1);",
        "END;",
        "BEGIN TRANSACTION;",
        "GO",
    ]
    for batch in script.batches:
        where = f"{label} ({batch.comment})"
        _check_sqlcmd_safe(batch.sql, where)
        out.append(f"-- {' '.join(batch.comment.split())}")
        out.append(batch_guard(app, name).rstrip("\n"))
        if batch.verbatim:
            out.append(f"EXECUTE sp_executesql {tsql_literal(batch.sql.strip())};")
        else:
            sql = batch.sql.strip()
            out.append(sql if sql.endswith(";") else sql + ";")
        out.append("GO")
    failed = f"{label} was NOT applied: an error above rolled it back. Fix the cause and run this script again."
    out += [
        f"-- Record {label} as applied, so manage.py migrate against this server skips it.",
        batch_guard(app, name).rstrip("\n"),
        "INSERT INTO [django_migrations] ([app], [name], [applied]) "
        f"VALUES ({tsql_literal(app)}, {tsql_literal(name)}, SYSDATETIMEOFFSET());",
        "GO",
        "IF @@TRANCOUNT > 0",
        "BEGIN",
        "    COMMIT TRANSACTION;",
        "END;",
        f"IF NOT EXISTS ({applied_predicate(app, name)})",
        "BEGIN",
        f"    RAISERROR ({tsql_literal(failed)}, 16, 1);",
        "END;",
        "GO",
    ]
    return "\n".join(out) + "\n"


# --- numbering and files -------------------------------------------------------------------------------


def existing_numbers(directory: Path) -> dict[str, int]:
    """``<app>_<migration>`` -> number, from the script files already in ``directory``."""
    numbers: dict[str, int] = {}
    if not directory.is_dir():
        return numbers
    for path in sorted(directory.glob("*.sql")):
        match = FILE_RE.match(path.name)
        if match is None:
            raise ExportError(f"{path} is not named NNN_<app>_<migration>.sql; rename or remove it")
        number, stem = int(match.group(1)), match.group(2)
        if stem in numbers:
            raise ExportError(f"{stem} has two scripts ({numbers[stem]:03d} and {number:03d}) in {directory}")
        if number in numbers.values():
            raise ExportError(f"number {number:03d} is used twice in {directory}")
        numbers[stem] = number
    return numbers


def assign_numbers(
    scripts: list[MigrationScript], numbers: dict[str, int], *, graph: MigrationGraph, renumber: bool = False
) -> list[tuple[int, MigrationScript]]:
    """Keep every existing number; append new migrations after the highest, in dependency order.

    ``graph`` is the migration graph the scripts were generated from.
    """
    if renumber:
        numbers = {}
    stems = {f"{s.app}_{s.name}" for s in scripts}
    gone = sorted(f"{n:03d}_{stem}.sql" for stem, n in numbers.items() if stem not in stems)
    if gone:
        raise ExportError(
            f"scripts for migrations that no longer exist: {', '.join(gone)}. If they were never applied to a "
            f"server, run `{GENERATED_BY} --renumber`; otherwise restore those migrations."
        )
    kept = sorted((numbers[f"{s.app}_{s.name}"], s) for s in scripts if f"{s.app}_{s.name}" in numbers)
    # Existing scripts must still come after their dependencies (a migration may have gained one). Only real
    # dependency edges count: the plan's order between unrelated apps is arbitrary, and a script appended
    # later for an earlier app (accounts.0003 after tenant_sql.0001) is valid.
    for number, script in kept:
        node = graph.node_map.get(script.key)
        for parent in node.parents if node is not None else ():
            parent_number = numbers.get(f"{parent.key[0]}_{parent.key[1]}")
            if parent_number is not None and parent_number > number:
                raise ExportError(
                    f"{script.app}.{script.name} depends on {parent.key[0]}.{parent.key[1]}, but its script has "
                    f"a lower number. Run `{GENERATED_BY} --renumber` if neither was applied to a server yet."
                )
    next_number = max(numbers.values(), default=0) + 1
    result = list(kept)
    for script in scripts:
        if f"{script.app}_{script.name}" not in numbers:
            result.append((next_number, script))
            next_number += 1
    return sorted(result, key=lambda item: item[0])


def generate(*, numbering_from: Path, renumber: bool = False) -> dict[str, str]:
    """File name -> script text for the whole main database."""
    exporter = Exporter()
    scripts = exporter.scripts()
    table_sql = exporter.django_migrations_table_sql()
    numbered = assign_numbers(scripts, existing_numbers(numbering_from), graph=exporter.loader.graph, renumber=renumber)
    return {script.filename(n): render(script, n, migrations_table_sql=table_sql) for n, script in numbered}


def differences(expected: dict[str, str], directory: Path) -> list[str]:
    """What differs between freshly generated scripts and the ``.sql`` files in ``directory``."""
    present = {p.name: p.read_text(encoding="utf-8") for p in directory.glob("*.sql")} if directory.is_dir() else {}
    problems = [f"missing {name}" for name in sorted(set(expected) - set(present))]
    problems += [f"not generated any more: {name}" for name in sorted(set(present) - set(expected))]
    problems += [
        f"out of date: {name}" for name in sorted(set(expected) & set(present)) if expected[name] != present[name]
    ]
    return problems


def write(files: dict[str, str], directory: Path) -> tuple[list[str], list[str]]:
    """Write the scripts (only those that changed); remove ``.sql`` files no longer generated."""
    directory.mkdir(parents=True, exist_ok=True)
    written, removed = [], []
    for name, text in sorted(files.items()):
        path = directory / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            written.append(name)
    for path in sorted(directory.glob("*.sql")):
        if path.name not in files:
            path.unlink()
            removed.append(path.name)
    return written, removed


def split_batches(text: str) -> list[str]:
    """The batches sqlcmd would send: text between lines holding only GO."""
    batches: list[str] = []
    current: list[str] = []
    for line in text.splitlines():
        if re.fullmatch(r"(?i)\s*go\s*", line):
            batches.append("\n".join(current))
            current = []
        else:
            current.append(line)
    if "\n".join(current).strip():
        batches.append("\n".join(current))
    return batches


def iter_scripts(directory: Path) -> Iterable[Path]:
    return sorted(directory.glob("*.sql"))
