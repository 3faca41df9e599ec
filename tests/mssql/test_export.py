"""The T-SQL export: in sync with the migrations, valid T-SQL, idempotent scripts, stable numbering."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import migrations, models
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.state import ProjectState

from ghostcrm.mssql import export
from tests.mssql.syntax import check_script

CANONICAL = Path(settings.MAIN_DATABASE_TSQL_DIR)
REGENERATE = "python manage.py export_tsql"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def generated() -> dict[str, str]:
    try:
        return export.generate(numbering_from=CANONICAL)
    except export.ExportError as exc:
        pytest.fail(f"The main database's migrations cannot be exported to T-SQL: {exc}")


@pytest.fixture(scope="module")
def end_state() -> ProjectState:
    return MigrationLoader(None, ignore_no_migrations=True).project_state()


def _header(text: str) -> tuple[str, str]:
    match = re.search(r"Django migration ([^.\s]+)\.(\S+)$", text, re.M)
    assert match, text[:200]
    return match.group(1), match.group(2)


def _sql(script: export.MigrationScript) -> str:
    return "\n".join(batch.sql for batch in script.batches)


# --- kept in sync ---------------------------------------------------------------------------------------


def test_committed_scripts_match_the_migrations(generated: dict[str, str]) -> None:
    problems = export.differences(generated, CANONICAL)
    assert not problems, (
        f"migrations_sql/main-database is out of date with the Django migrations ({'; '.join(problems[:10])}). "
        f"Run: {REGENERATE}  and commit migrations_sql/main-database/."
    )


def test_every_batch_of_every_committed_script_parses_as_tsql() -> None:
    scripts = list(export.iter_scripts(CANONICAL))
    assert scripts, f"no scripts in {CANONICAL}; run: {REGENERATE}"
    problems = [str(problem) for path in scripts for problem in check_script(path)]
    assert not problems, "\n".join(problems)


def test_freshly_generated_scripts_parse_as_tsql(generated: dict[str, str], tmp_path: Path) -> None:
    export.write(generated, tmp_path)
    problems = [str(problem) for path in export.iter_scripts(tmp_path) for problem in check_script(path)]
    assert not problems, "\n".join(problems)
    assert len(list(tmp_path.glob("*.sql"))) == len(generated)


def test_syntax_check_rejects_broken_and_unparsed_statements(generated: dict[str, str], tmp_path: Path) -> None:
    name = next(n for n in generated if n.endswith("_audit_0001_initial.sql"))
    text = generated[name]
    guard = export.batch_guard("audit", "0001_initial")
    cases = {
        "broken.sql": text.replace("CREATE TABLE [audit_auditevent] (", "CREATE TABLE [audit_auditevent] ((", 1),
        "unparsed.sql": text.replace(guard, guard + "PRINT N'hello';\n", 1),
        "unguarded.sql": text.replace(guard, "", 1),
    }
    for filename, broken in cases.items():
        assert broken != text
        (tmp_path / filename).write_text(broken, encoding="utf-8")
        problems = check_script(tmp_path / filename)
        assert len(problems) == 1, (filename, problems)
    assert "does not start with the migration's guard" in str(check_script(tmp_path / "unguarded.sql")[0])
    assert "PRINT" in str(check_script(tmp_path / "unparsed.sql")[0])
    (tmp_path / "fine.sql").write_text(text, encoding="utf-8")
    assert check_script(tmp_path / "fine.sql") == []


def test_check_option_fails_on_a_stale_folder_and_names_the_command(generated: dict[str, str], tmp_path: Path) -> None:
    out = io.StringIO()
    call_command("export_tsql", "--output", str(tmp_path), stdout=out)
    assert f"{len(generated)} T-SQL scripts" in out.getvalue()
    assert {p.name: p.read_text(encoding="utf-8") for p in tmp_path.glob("*.sql")} == generated
    call_command("export_tsql", "--output", str(tmp_path), "--check", stdout=io.StringIO())

    stale = sorted(tmp_path.glob("*.sql"))[3]
    stale.write_text(stale.read_text(encoding="utf-8").replace("nvarchar", "varchar"), encoding="utf-8")
    err = io.StringIO()
    with pytest.raises(SystemExit) as exit_info:
        call_command("export_tsql", "--output", str(tmp_path), "--check", stdout=io.StringIO(), stderr=err)
    assert exit_info.value.code == 1
    assert f"out of date: {stale.name}" in err.getvalue()
    assert "Run: python manage.py export_tsql" in err.getvalue()

    out = io.StringIO()
    call_command("export_tsql", "--output", str(tmp_path), stdout=out)
    assert "1 written" in out.getvalue()
    assert stale.read_text(encoding="utf-8") == generated[stale.name]


def test_export_is_identical_across_processes(tmp_path: Path) -> None:
    """mssql-django orders deferred statements through a set: two runs with different hash seeds agree."""
    outputs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "DJANGO_SETTINGS_MODULE": "ghostcrm.settings"}
        out = tmp_path / seed
        subprocess.run(
            [sys.executable, "manage.py", "export_tsql", "--output", str(out)],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        outputs.append({p.name: p.read_text(encoding="utf-8") for p in out.glob("*.sql")})
    assert outputs[0] == outputs[1]
    assert outputs[0]


# --- the shape of every script --------------------------------------------------------------------------


def test_every_script_is_transactional_guarded_and_records_itself(generated: dict[str, str]) -> None:
    for name, text in generated.items():
        app, migration = _header(text)
        guard = export.batch_guard(app, migration).strip()
        batches = [
            "\n".join(line for line in b.splitlines() if not line.startswith("--")).strip()
            for b in export.split_batches(text)
        ]
        assert batches[0].startswith("SET QUOTED_IDENTIFIER ON;"), name
        assert "SET XACT_ABORT ON;" in batches[0], name
        assert batches[1].startswith("IF OBJECT_ID(N'[django_migrations]', N'U') IS NULL"), name
        assert batches[1].endswith("BEGIN TRANSACTION;"), name
        for body in batches[2:-1]:
            assert body.startswith(guard), (name, body[:200])
        record = (
            "INSERT INTO [django_migrations] ([app], [name], [applied]) "
            f"VALUES (N'{app}', N'{migration}', SYSDATETIMEOFFSET());"
        )
        assert batches[-2] == f"{guard}\n{record}", name
        assert batches[-1].startswith("IF @@TRANCOUNT > 0\nBEGIN\n    COMMIT TRANSACTION;\nEND;"), name
        assert f"RAISERROR (N'{app}.{migration} was NOT applied" in batches[-1], name
        assert text.count("BEGIN TRANSACTION;") == 1, name


def test_one_script_per_migration_numbered_in_dependency_order(generated: dict[str, str]) -> None:
    loader = MigrationLoader(None, ignore_no_migrations=True)
    numbers = {}
    for name, text in generated.items():
        match = export.FILE_RE.match(name)
        assert match, name
        numbers[_header(text)] = int(match.group(1))
        assert name == f"{int(match.group(1)):03d}_{'_'.join(_header(text))}.sql"
    assert set(numbers) == set(loader.graph.nodes), "every migration of every app has exactly one script"
    assert sorted(numbers.values()) == list(range(1, len(numbers) + 1))
    for key, number in numbers.items():
        for parent in loader.graph.node_map[key].parents:
            assert numbers[parent.key] < number, f"{key} runs before its dependency {parent.key}"
    # Django's own apps and third-party apps routed to the main database are exported too.
    apps = {app for app, _ in numbers}
    assert {"auth", "contenttypes", "admin", "sessions", "axes", "otp_totp", "audit", "accounts"} <= apps


def test_django_migrations_table_is_the_one_django_creates(generated: dict[str, str]) -> None:
    text = next(iter(generated.values()))
    assert (
        "CREATE TABLE [django_migrations] ([id] bigint NOT NULL PRIMARY KEY IDENTITY (1, 1), "
        "[app] nvarchar(255) NOT NULL, [name] nvarchar(255) NOT NULL, [applied] datetimeoffset NOT NULL);"
    ) in text


def test_runsql_is_emitted_verbatim(generated: dict[str, str]) -> None:
    text = next(t for n, t in generated.items() if n.endswith("_audit_0001_initial.sql"))
    assert (
        "EXECUTE sp_executesql N'INSERT INTO audit_auditchainhead (id, sequence, hash) VALUES "
        "(1, 0, ''" + "0" * 64 + "'')';"
    ) in text
    # Tables come before the genesis row; indexes after it (deferred, as Django does).
    assert text.index("CREATE TABLE [audit_auditchainhead]") < text.index("sp_executesql N'INSERT")


def test_nullable_unique_fields_become_filtered_unique_indexes(end_state: ProjectState) -> None:
    exporter = export.Exporter()
    migration = migrations.Migration("0999_probe", "audit")
    migration.operations = [
        migrations.CreateModel(
            "Probe",
            fields=[
                ("id", models.BigAutoField(primary_key=True)),
                ("ref", models.CharField(max_length=20, null=True, unique=True)),
            ],
        )
    ]
    script, _ = exporter.export_migration(migration, end_state)
    assert exporter.problems == []
    sql = _sql(script)
    assert "[ref] nvarchar(20) NULL" in sql and "[ref] nvarchar(20) NULL UNIQUE" not in sql
    assert re.search(
        r"CREATE UNIQUE INDEX \[audit_probe_ref_\w+_uniq\] ON \[audit_probe\]\(\[ref\]\) WHERE \[ref\] IS NOT NULL", sql
    )


# --- operations that need the server's constraint names -------------------------------------------------


def test_alter_and_remove_field_look_up_server_named_constraints_when_the_script_runs(
    end_state: ProjectState, tmp_path: Path
) -> None:
    exporter = export.Exporter()
    migration = migrations.Migration("0999_alter", "audit")
    migration.operations = [
        # hash loses unique=True: the UNIQUE constraint was named by SQL Server (UQ__…), so it is found at run time.
        migrations.AlterField("auditevent", "hash", models.CharField(max_length=64)),
        migrations.RemoveField("auditevent", "duration_ms"),
    ]
    script, _ = exporter.export_migration(migration, end_state)
    assert exporter.problems == []
    sql = _sql(script)
    assert "i.is_unique = 1" in sql and "= N'hash';" in sql
    assert "FROM sys.check_constraints AS k" in sql and "= N'duration_ms';" in sql
    assert "ALTER TABLE [audit_auditevent] DROP COLUMN [duration_ms]" in sql
    assert "gcrt_" not in sql, "no placeholder name may reach a script"
    assert "ROLLBACK TRANSACTION;\n    RAISERROR (N'audit.0999_alter: Alter field hash on auditevent: the unique" in sql

    text = export.render(script, 999, migrations_table_sql="CREATE TABLE [django_migrations] ([id] int)")
    path = tmp_path / "999_audit_0999_alter.sql"
    path.write_text(text, encoding="utf-8")
    assert check_script(path) == []


def test_operations_that_need_a_live_server_are_reported_by_name(end_state: ProjectState) -> None:
    def backfill(apps: object, schema_editor: object) -> None:
        return None

    exporter = export.Exporter()
    migration = migrations.Migration("0999_probe", "audit")
    migration.operations = [
        migrations.CreateModel(
            "Probe",
            fields=[
                ("id", models.BigAutoField(primary_key=True)),
                ("ref", models.CharField(max_length=20, null=True, unique=True)),
            ],
        ),
        # sp_rename would drop and re-create the filtered unique index, reading its definition from the server.
        migrations.RenameField("probe", "ref", "reference"),
        migrations.AddField("probe", "token", models.CharField(max_length=36, default=backfill)),
        migrations.RunPython(backfill),
        migrations.RunPython(backfill, elidable=True),
        migrations.RunPython(migrations.RunPython.noop),
    ]
    script, _ = exporter.export_migration(migration, end_state)
    problems = "\n".join(exporter.problems)
    assert len(exporter.problems) == 3, problems
    assert "audit.0999_probe: Rename field ref on probe to reference: it needs the live database" in problems
    assert "audit.0999_probe: Add field token to probe: the column default comes from Python" in problems
    assert (
        "audit.0999_probe: Raw Python operation" in problems and "backfill): Python code cannot be exported" in problems
    )
    assert any("elidable, not needed on a new database" in note for note in script.notes)
    assert any("does nothing going forwards" in note for note in script.notes)
    with pytest.raises(export.ExportError, match="cannot be written as T-SQL without a live SQL Server"):
        exporter.raise_problems()


def test_documented_third_party_runpython_is_named_in_the_script(generated: dict[str, str]) -> None:
    text = next(t for n, t in generated.items() if n.endswith("_axes_0007_alter_accessattempt_unique_together.sql"))
    assert (
        "-- Not exported: RunPython axes.migrations.0007_alter_accessattempt_unique_together.deduplicate_attempts"
        in text
    )


# --- numbering ------------------------------------------------------------------------------------------


def test_existing_numbers_never_change_when_migrations_are_added(generated: dict[str, str], tmp_path: Path) -> None:
    # As if sessions.0001_initial had been written after everything else was exported.
    late = next(n for n in generated if n.endswith("_sessions_0001_initial.sql"))
    late_number = int(late[:3])
    for name, text in generated.items():
        number = int(name[:3])
        if name == late:
            continue
        new_number = number - 1 if number > late_number else number
        (tmp_path / f"{new_number:03d}_{name[4:]}").write_text(text, encoding="utf-8")
    before = sorted(p.name for p in tmp_path.glob("*.sql"))
    files = export.generate(numbering_from=tmp_path)
    assert set(before) < set(files), "every existing file keeps its name"
    (added,) = set(files) - set(before)
    assert added == f"{len(generated):03d}_sessions_0001_initial.sql"
    # Once written, the appended script (an earlier app than the last one, no dependency on it) stays valid.
    (tmp_path / added).write_text(files[added], encoding="utf-8")
    assert set(export.generate(numbering_from=tmp_path)) == set(files)

    # A script whose migration disappeared is refused, unless everything is renumbered on purpose.
    (tmp_path / "900_audit_0002_gone.sql").write_text("-- x\n", encoding="utf-8")
    with pytest.raises(export.ExportError, match=r"900_audit_0002_gone.sql.*--renumber"):
        export.generate(numbering_from=tmp_path)
    assert export.generate(numbering_from=tmp_path, renumber=True) == export.generate(numbering_from=tmp_path / "x")


def test_a_changed_dependency_order_is_refused(generated: dict[str, str], tmp_path: Path) -> None:
    first = next(n for n in generated if n.endswith("_contenttypes_0001_initial.sql"))
    second = next(n for n in generated if n.endswith("_contenttypes_0002_remove_content_type_name.sql"))
    for name in generated:
        target = name
        if name == first:
            target = second[:3] + name[3:]
        elif name == second:
            target = first[:3] + name[3:]
        (tmp_path / target).write_text("-- old\n", encoding="utf-8")
    with pytest.raises(export.ExportError, match=r"contenttypes\.0002_remove_content_type_name"):
        export.generate(numbering_from=tmp_path)


def test_readme_in_the_scripts_folder_survives_a_rewrite(tmp_path: Path, generated: dict[str, str]) -> None:
    shutil.copy(CANONICAL / "README.md", tmp_path / "README.md")
    (tmp_path / "000_stale_0001_x.sql").write_text("-- stale\n", encoding="utf-8")
    written, removed = export.write(generated, tmp_path)
    assert removed == ["000_stale_0001_x.sql"]
    assert len(written) == len(generated)
    assert (tmp_path / "README.md").exists()


def test_a_main_database_app_without_migrations_is_refused() -> None:
    exporter = export.Exporter()
    exporter.loader.unmigrated_apps = {*exporter.loader.unmigrated_apps, "audit"}
    with pytest.raises(export.ExportError, match=r"audit\.AuditEvent: a main-database model whose app has no"):
        exporter.scripts()
