"""`tenant_sql lint`: names, numbering, parseability, schema names, transactions, Citus rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from tenants.engine.lint import template_lint, template_refusals, templates_lint
from tenants.engine.templates import BLOCKING_RULES, template_set_read
from tests.engine.support import FIXTURES, tenant_sql


def write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


def lines(directory: Path) -> list[str]:
    return [str(p) for p in templates_lint(directory).problems]


def test_fixture_templates_are_clean() -> None:
    for name in ("basic", "broken", "concurrent"):
        assert lines(FIXTURES / name) == []


def test_duplicates_gaps_and_bad_names(tmp_path: Path) -> None:
    directory = write(
        tmp_path / "t",
        {
            "001_core.pgsql": "CREATE TABLE a (id bigint);\n",
            "003_first.pgsql": "CREATE TABLE b (id bigint);\n",
            "003_second.pgsql": "CREATE TABLE c (id bigint);\n",
            "4_bad.sql": "SELECT 1;\n",
            "README.md": "not a template",
        },
    )
    assert lines(directory) == [
        "003_first.pgsql:1: duplicate: version 003 is also used by 003_second.pgsql",
        "003_first.pgsql:1: gap: version 002 is missing before 003",
        "003_second.pgsql:1: duplicate: version 003 is also used by 003_first.pgsql",
        "4_bad.sql:1: name: file names must look like NNN_name.pgsql (lowercase, 3 digits)",
    ]


def test_hard_coded_schemas_are_caught(tmp_path: Path) -> None:
    directory = write(
        tmp_path / "t",
        {
            "001_core.pgsql": (
                "CREATE TABLE a (id bigint, t public.citext);\n"  # 1
                "CREATE TABLE acme.b (id bigint);\n"  # 2
                "SET search_path TO acme;\n"  # 3
                "CREATE SCHEMA acme;\n"  # 4
                "SELECT acme.f(1), pg_catalog.now(), x.id FROM a x;\n"  # 5 (pg_catalog and alias.col are fine)
                "CREATE FUNCTION g() RETURNS int LANGUAGE plpgsql AS $$\nBEGIN\n"  # 6-7
                "  RETURN (SELECT count(*) FROM public.users);\nEND $$;\n"  # 8-9
                "GRANT USAGE ON SCHEMA acme TO ${app_role};\n"  # 10
                "COMMENT ON COLUMN a.id IS 'fine';\n"  # 11
            ),
        },
    )
    found = lines(directory)
    assert [line.split(": ", 1)[0] + ": " + line.split(": ")[1] for line in found] == [
        "001_core.pgsql:1: hard-coded-schema",
        "001_core.pgsql:2: hard-coded-schema",
        "001_core.pgsql:3: hard-coded-schema",
        "001_core.pgsql:4: hard-coded-schema",
        "001_core.pgsql:5: hard-coded-schema",
        "001_core.pgsql:8: hard-coded-schema",
        "001_core.pgsql:10: hard-coded-schema",
    ]
    assert "public.citext names schema 'public'" in found[0]
    assert "acme.f names schema 'acme'" in found[4]


def test_transactions_placeholders_parse_and_citus(tmp_path: Path) -> None:
    directory = write(
        tmp_path / "t",
        {
            "001_core.pgsql": (
                "CREATE TABLE a (id serial PRIMARY KEY, n int GENERATED ALWAYS AS IDENTITY, u uuid);\n"  # 1
                "CREATE TABLE c () INHERITS (a);\n"  # 2
                "CREATE TABLE p (id bigint, k int) PARTITION BY LIST (k);\n"  # 3
                "CREATE TABLE p1 PARTITION OF p FOR VALUES IN (1);\n"  # 4 partitions are fine
                "CREATE POLICY pol ON a USING (u IN (SELECT u FROM a));\n"  # 5
                "ALTER TABLE a SET SCHEMA other;\n"  # 6
                "CREATE FOREIGN TABLE f (id bigint) SERVER s;\n"  # 7
                "CREATE INDEX CONCURRENTLY i ON a (u);\n"  # 8
                "COMMIT;\n"  # 9
                "GRANT SELECT ON a TO ${reader};\n"  # 10
                "SET ROLE postgres;\n"  # 11
                "CREATE EXTENSION pgcrypto;\n"  # 12
            ),
            "002_bad.pgsql": "CREATE TABLE ok (id bigint);\nSELECT FROM FROM;\n",
            "003_marked.pgsql": "-- tenant_sql: no-transaction\nCREATE TABLE fine (id bigint);\n",
        },
    )
    found = [line.split(": ")[0] + ": " + line.split(": ")[1] for line in lines(directory)]
    assert found == [
        "001_core.pgsql:1: citus-int-key",
        "001_core.pgsql:1: citus-int-key",
        "001_core.pgsql:2: citus-inheritance",
        "001_core.pgsql:5: citus-policy-subquery",
        "001_core.pgsql:6: citus-set-schema",
        "001_core.pgsql:7: citus-foreign-table",
        "001_core.pgsql:8: non-transactional",
        "001_core.pgsql:9: transaction-control",
        "001_core.pgsql:10: placeholder",
        "001_core.pgsql:11: role-switch",
        "001_core.pgsql:12: extension",
        "002_bad.pgsql:2: parse",
        "003_marked.pgsql:1: no-transaction-unneeded",
    ]


@pytest.mark.django_db(databases=["default", "tenants"])
def test_lint_command_prints_one_line_per_problem_and_exits_1(tmp_path: Path) -> None:
    directory = write(tmp_path / "t", {"001_a.pgsql": "SELECT 1;\n", "001_b.pgsql": "SELECT 2;\n"})
    run = tenant_sql("lint", "--dir", str(directory))
    assert run.code == 1
    assert run.out.splitlines() == [
        "001_a.pgsql:1: duplicate: version 001 is also used by 001_b.pgsql",
        "001_b.pgsql:1: duplicate: version 001 is also used by 001_a.pgsql",
    ]
    clean = tenant_sql("lint", "--dir", str(FIXTURES / "basic"))
    assert clean.code == 0
    assert "3 template(s)" in clean.out


@pytest.mark.parametrize(
    ("text", "blocked"),
    [
        ("CREATE TABLE a (id bigint);\n", False),
        ("-- tenant_sql: no-transaction\nCREATE INDEX CONCURRENTLY i ON a (id);\n", False),
        ("CREATE INDEX CONCURRENTLY i ON a (id);\n", True),
        ("REINDEX (CONCURRENTLY) INDEX i;\n", True),
        ("ALTER TABLE p DETACH PARTITION p1 CONCURRENTLY;\n", True),
        ("CREATE TABLE a (id bigint);\nCOMMIT;\nCREATE TABLE b (id bigint);\n", True),
        ("GRANT SELECT ON a TO ${reader};\n", True),
        ("SELECT FROM FROM;\n", True),
        ("-- only a comment\n", True),
    ],
)
def test_apply_time_check_matches_the_blocking_rules(tmp_path: Path, text: str, blocked: bool) -> None:
    directory = write(tmp_path / "t", {"001_x.pgsql": text})
    (template,) = template_set_read(directory).templates
    assert bool(template_refusals(template)) is blocked
    assert any(p.rule in BLOCKING_RULES for p in template_lint(template)) is blocked


def test_schema_names_inside_function_and_do_bodies_are_caught(tmp_path: Path) -> None:
    """Bodies are parsed too (SQL bodies as SQL, PL/pgSQL with its own parser), not only scanned for public."""
    directory = write(
        tmp_path / "t",
        {
            "001_core.pgsql": (
                "CREATE TABLE t (id bigint, updated_at timestamptz);\n"  # 1
                "CREATE FUNCTION trg() RETURNS trigger LANGUAGE plpgsql AS $$\n"  # 2
                "BEGIN\n"  # 3
                "  NEW.updated_at := now();\n"  # 4 NEW.x is a record field, not a schema
                "  INSERT INTO acme.log VALUES (NEW.id);\n"  # 5
                "  RETURN NEW;\n"  # 6
                "END $$;\n"  # 7
                "CREATE FUNCTION f(p_qty int) RETURNS bigint LANGUAGE plpgsql AS $$\n"  # 8
                "DECLARE r record;\n"  # 9
                "BEGIN\n"  # 10
                "  p_qty := (SELECT count(*) FROM other.t);\n"  # 11
                "  SELECT * INTO r FROM t WHERE id = p_qty;\n"  # 12
                "  RETURN r.id;\n"  # 13
                "END $$;\n"  # 14
                "CREATE FUNCTION s() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM acme.t';\n"  # 15
                "DO $$\nBEGIN\n"  # 16-17
                "  PERFORM 1 FROM acme.t;\n"  # 18
                "END $$;\n"  # 19
                "SELECT set_config('search_path', 'acme', true);\n"  # 20
                "CREATE FUNCTION clean() RETURNS bigint LANGUAGE plpgsql AS $$\n"  # 21
                "BEGIN RETURN (SELECT count(*) FROM t x WHERE x.id > 0 AND pg_catalog.now() IS NOT NULL); END $$;\n"
            ),
        },
    )
    found = lines(directory)
    assert [line.split(": ")[0] for line in found] == [
        "001_core.pgsql:5",
        "001_core.pgsql:11",
        "001_core.pgsql:15",
        "001_core.pgsql:18",
        "001_core.pgsql:20",
    ]
    assert all(": hard-coded-schema: " in line for line in found)
    assert "in the body: acme.log names schema 'acme'" in found[0]
    assert "in the body: other.t names schema 'other'" in found[1]
    assert "set_config('search_path'" in found[4]


def test_placeholders_render_as_quoted_identifiers_and_a_literal(tmp_path: Path) -> None:
    directory = write(
        tmp_path / "t",
        {
            "001_core.pgsql": "GRANT SELECT ON t TO ${app_role};\nALTER TABLE t OWNER TO ${owner_role};\n"
            "INSERT INTO s (tenant) VALUES (${tenant_id});\n"
        },
    )
    (template,) = template_set_read(directory).templates
    rendered = template.render(owner_role='Odd "Owner"', app_role="app role", tenant_id="x'); DROP TABLE t; --")
    assert rendered == (
        'GRANT SELECT ON t TO "app role";\nALTER TABLE t OWNER TO "Odd ""Owner""";\n'
        "INSERT INTO s (tenant) VALUES ('x''); DROP TABLE t; --');\n"
    )
