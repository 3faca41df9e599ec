"""The privilege-related lint rules (role-switch, privilege, extension, dynamic-sql, symlink, header).

Each is a refusal: ``apply`` does not run a file these flag (``template_refusals``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings

from tenants.engine.lint import template_lint, template_refusals
from tenants.engine.templates import Template, headers_read, template_set_read
from tests.engine.support import write_templates


def one_template(tmp_path: Path, text: str) -> Template:
    (template,) = template_set_read(write_templates(tmp_path / "t", {"001_x.pgsql": text})).templates
    return template


def findings(tmp_path: Path, text: str) -> list[tuple[int, str]]:
    return [(p.line, p.rule) for p in template_lint(one_template(tmp_path, text))]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("CREATE TABLE a (id bigint);\nRESET ROLE;\n", (2, "role-switch")),
        ("SET ROLE postgres;\n", (1, "role-switch")),
        ("SET LOCAL ROLE NONE;\n", (1, "role-switch")),
        ("SET SESSION AUTHORIZATION postgres;\n", (1, "role-switch")),
        ("SELECT set_config('role', 'postgres', true);\n", (1, "role-switch")),
        ("SELECT set_config('session_authorization', 'x', false);\n", (1, "role-switch")),
        ("SELECT set_config('ro' || 'le', 'postgres', true);\n", (1, "role-switch")),
        ("CREATE FUNCTION f() RETURNS int LANGUAGE sql SET role = 'postgres' AS 'SELECT 1';\n", (1, "role-switch")),
        ("\nALTER ROLE ${app_role} SUPERUSER;\n", (2, "privilege")),
        ("ALTER ROLE ${owner_role} SET work_mem = '1GB';\n", (1, "privilege")),
        ("CREATE ROLE intruder LOGIN;\n", (1, "privilege")),
        ("GRANT ${owner_role} TO ${app_role};\n", (1, "privilege")),
        ("ALTER SYSTEM SET work_mem = '1GB';\n", (1, "privilege")),
        ("COPY (SELECT 1) TO PROGRAM 'id > /tmp/x';\n", (1, "privilege")),
        ("COPY (SELECT 1) TO '/tmp/x';\n", (1, "privilege")),
        ("SELECT pg_read_file('/etc/passwd');\n", (1, "privilege")),
        ("SELECT pg_ls_dir('.');\n", (1, "privilege")),
        ("SELECT lo_import('/etc/passwd');\n", (1, "privilege")),
        ("SELECT dblink_exec('dbname=postgres', 'SELECT 1');\n", (1, "privilege")),
        ("CREATE TABLE h AS SELECT rolpassword FROM pg_authid;\n", (1, "privilege")),
        ("CREATE TABLE h AS SELECT passwd FROM pg_catalog.pg_shadow;\n", (1, "privilege")),
        (
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql SECURITY DEFINER AS 'SELECT 1';\n"
            "ALTER FUNCTION f() OWNER TO postgres;\n",
            (2, "privilege"),
        ),
        ("CREATE TABLE a (id bigint);\nALTER TABLE a OWNER TO postgres;\n", (2, "privilege")),
        ("LOAD 'somelib';\n", (1, "privilege")),
        ("CREATE EXTENSION dblink;\n", (1, "extension")),
        ("SELECT query_to_xml('SELECT 1', true, true, '');\n", (1, "dynamic-sql")),
    ],
)
def test_each_rule_flags_its_statement_on_its_line(tmp_path: Path, text: str, expected: tuple[int, str]) -> None:
    found = findings(tmp_path, text)
    assert expected in found, found
    assert expected[1] in {p.rule for p in template_refusals(one_template(tmp_path, text))}


@pytest.mark.parametrize(
    ("body", "rule"),
    [
        ("EXECUTE 'RESET ROLE';", "role-switch"),
        ("EXECUTE 'SET ROLE postgres';", "role-switch"),
        ("EXECUTE 'CREATE TABLE ' || 'pub' || 'lic.x()';", "dynamic-sql"),
        ("EXECUTE format('CREATE TABLE %s (id int)', 'public.x');", "dynamic-sql"),
        ("PERFORM set_config('ro'||'le', 'postgres', true);", "role-switch"),
        ("PERFORM set_config('search_path', 'public', true);", "hard-coded-schema"),
        ("EXECUTE 'ALTER ROLE postgres NOSUPERUSER';", "privilege"),
        ("EXECUTE 'COPY (SELECT 1) TO PROGRAM ''id''';", "privilege"),
        ("PERFORM pg_read_file('/etc/passwd');", "privilege"),
        ("FOR r IN EXECUTE 'SELECT ' || 'rolpassword FROM pg_authid' LOOP END LOOP;", "dynamic-sql"),
    ],
)
def test_do_and_function_bodies_are_checked_by_the_same_rules(tmp_path: Path, body: str, rule: str) -> None:
    text = f"DO $$\nDECLARE r record;\nBEGIN\n    {body}\nEND\n$$;\n"
    assert (4, rule) in findings(tmp_path, text), findings(tmp_path, text)
    function = (
        f"CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$\nDECLARE r record;\nBEGIN\n    {body}\nEND\n$$;\n"
    )
    assert (4, rule) in findings(tmp_path, function)


def test_execute_of_a_fixed_statement_is_checked_not_refused(tmp_path: Path) -> None:
    """A constant string, or format() of a constant with %I/%L only, is parsed and checked like any SQL."""
    text = (
        "CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n"
        "    EXECUTE 'SELECT 1';\n"
        "    EXECUTE format('INSERT INTO %I.log (id) VALUES (%L)', TG_TABLE_SCHEMA, NEW.id);\n"
        "    RETURN NEW;\nEND\n$$;\n"
    )
    assert findings(tmp_path, text) == []


def test_dynamic_sql_is_allowed_by_an_explicit_header(tmp_path: Path) -> None:
    body = "DO $$ BEGIN EXECUTE 'CREATE TABLE ' || 'x' || '(id bigint)'; END $$;\n"
    assert [rule for _, rule in findings(tmp_path, body)] == ["dynamic-sql"]
    allowed = "-- Builds its table names at run time.\n-- tenant_sql: allow dynamic-sql\n" + body
    assert findings(tmp_path, allowed) == []
    # The header allows dynamic SQL only: a role switch in the same file is still refused.
    assert (4, "role-switch") in findings(tmp_path, allowed + "RESET ROLE;\n")


def test_unknown_headers_and_unknown_allowances_are_refused(tmp_path: Path) -> None:
    text = "-- tenant_sql: allow role-switch\n-- tenant_sql: run as superuser\nCREATE TABLE a (id bigint);\n"
    assert findings(tmp_path, text) == [(2, "header"), (1, "header")]
    assert headers_read("-- tenant_sql: lock_timeout=2s\nSELECT 1;\n").value("lock_timeout") == "2s"


def test_symlinks_and_files_resolving_outside_are_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside.sql"
    outside.write_text("CREATE TABLE b (id bigint);\n")
    directory = write_templates(tmp_path / "t", {"001_a.pgsql": "CREATE TABLE a (id bigint);\n"})
    (directory / "002_b.pgsql").symlink_to(outside)
    (directory / "003_c.pgsql").symlink_to(directory / "001_a.pgsql")

    result = template_set_read(directory)

    assert [t.filename for t in result.templates] == ["001_a.pgsql"]
    assert [(p.filename, p.rule) for p in result.blocking_problems()] == [
        ("002_b.pgsql", "symlink"),
        ("003_c.pgsql", "symlink"),
    ]


def test_the_project_templates_pass_every_refusal_rule() -> None:
    for template in template_set_read(Path(settings.TENANT_TEMPLATES_DIR)).templates:
        assert template_refusals(template) == [], template.filename


SAFETY_CASES = [
    ("DROP TABLE notes;\n", "drop-table", "destructive"),
    ("ALTER TABLE notes DROP COLUMN body;\n", "drop-column", "drop-column"),
    ("ALTER TABLE notes ALTER COLUMN body TYPE varchar(200);\n", "column-type", "table-rewrite"),
    ("ALTER TABLE notes ALTER COLUMN body SET NOT NULL;\n", "set-not-null", "set-not-null"),
    ("ALTER TABLE notes ADD COLUMN token uuid DEFAULT gen_random_uuid();\n", "volatile-default", "table-rewrite"),
    ("ALTER TABLE notes ADD CONSTRAINT body_short CHECK (length(body) < 100);\n", "constraint-not-valid",
     "constraint-not-valid"),
    ("ALTER TABLE notes ADD COLUMN owner_id bigint REFERENCES owners (id);\n", "constraint-not-valid",
     "constraint-not-valid"),
    ("CREATE INDEX notes_body_idx ON notes (body);\n", "index-not-concurrent", "index-not-concurrent"),
    ("ALTER TABLE notes RENAME TO memos;\n", "rename", "rename"),
    ("ALTER TABLE notes RENAME COLUMN body TO text;\n", "rename", "rename"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "rule", "allowance"), SAFETY_CASES)
def test_each_safety_rule_has_a_code_a_sentence_and_the_line(
    tmp_path: Path, text: str, rule: str, allowance: str
) -> None:
    template = one_template(tmp_path, "-- A later file on an existing table.\n\n" + text)
    (problem,) = template_lint(template)

    assert (problem.line, problem.rule) == (3, rule)
    assert problem.message.endswith(("client", "lock", "it", "VALIDATE CONSTRAINT", "builds; use CREATE INDEX "
                                     "CONCURRENTLY in a '-- tenant_sql: no-transaction' file", "old name"))  # fmt: skip
    assert template_refusals(template) == []  # a rollout refuses it; apply to one schema does not


@pytest.mark.parametrize(("text", "rule", "allowance"), SAFETY_CASES)
def test_each_safety_rule_is_allowed_by_its_header(tmp_path: Path, text: str, rule: str, allowance: str) -> None:
    assert findings(tmp_path, f"-- tenant_sql: allow {allowance}\n{text}") == []
    assert findings(tmp_path, f"-- tenant_sql: allow {rule}\n{text}") == []


def test_safety_rules_leave_tables_created_in_the_same_file_alone(tmp_path: Path) -> None:
    text = (
        "CREATE TABLE notes (id bigint PRIMARY KEY, body text);\n"
        "CREATE INDEX notes_body_idx ON notes (body);\n"
        "ALTER TABLE notes ADD CONSTRAINT body_short CHECK (length(body) < 100);\n"
        "ALTER TABLE notes ALTER COLUMN body SET NOT NULL;\n"
    )
    assert findings(tmp_path, text) == []


def test_set_not_null_after_a_validated_check_passes(tmp_path: Path) -> None:
    text = (
        "ALTER TABLE notes ADD CONSTRAINT body_nn CHECK (body IS NOT NULL) NOT VALID;\n"
        "ALTER TABLE notes VALIDATE CONSTRAINT body_nn;\n"
        "ALTER TABLE notes ALTER COLUMN body SET NOT NULL;\n"
    )
    assert findings(tmp_path, text) == []


def test_timeout_headers_must_be_durations(tmp_path: Path) -> None:
    good = "-- tenant_sql: lock_timeout=2s\n-- tenant_sql: statement_timeout=30min\nCREATE TABLE a (id bigint);\n"
    assert findings(tmp_path, good) == []
    bad = "-- tenant_sql: lock_timeout=soon\nCREATE TABLE a (id bigint);\n"
    assert findings(tmp_path, bad) == [(1, "header")]
    assert [p.rule for p in template_refusals(one_template(tmp_path, bad))] == ["header"]
