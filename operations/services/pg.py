"""PostgreSQL client tools and catalog facts for backups, restores and drills."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from ghostcrm.core.errors import ApplicationError, TransientError

TOOLS = ("pg_dump", "pg_restore", "psql")


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise ApplicationError(f"{name} is not installed on this machine; install the PostgreSQL client tools.")
    return found


def conn_args(params: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    """Environment and arguments for a client tool from Django database settings (password via PGPASSWORD)."""
    env = {**os.environ}
    if params.get("PASSWORD"):
        env["PGPASSWORD"] = str(params["PASSWORD"])
    args = ["-h", str(params.get("HOST") or "127.0.0.1"), "-p", str(params.get("PORT") or 5432), "--no-password"]
    if params.get("USER"):
        args += ["-U", str(params["USER"])]
    return env, args


def connect(params: dict[str, Any], *, dbname: str | None = None, autocommit: bool = True) -> psycopg.Connection:
    try:
        return psycopg.connect(
            host=params.get("HOST") or None,
            port=params.get("PORT") or 5432,
            user=params.get("USER") or None,
            password=params.get("PASSWORD") or None,
            dbname=dbname or params["NAME"],
            autocommit=autocommit,
            application_name="ghostcrm-operations",
            connect_timeout=10,
        )
    except psycopg.OperationalError as exc:
        raise TransientError(f"Cannot connect to database {dbname or params['NAME']!r}: {exc}".strip()) from exc


def run(command: list[str], *, env: dict[str, str], what: str, stdin: Any = None) -> str:
    """Run a client tool; ``TransientError`` with its stderr when it fails. Returns its stdout."""
    result = subprocess.run(  # noqa: S603 - fixed programs, validated names, no shell
        command, env=env, stdin=stdin, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise TransientError(f"{what} failed: {result.stderr.strip()[:2000]}")
    return result.stdout


def pg_dump(params: dict[str, Any], *, target: Path, schema: str | None = None, snapshot: str = "") -> None:
    env, args = conn_args(params)
    command = [tool("pg_dump"), *args, "--format=custom", "--file", str(target)]
    if schema:
        command += ["--schema", schema]
    if snapshot:
        command += ["--snapshot", snapshot]
    run([*command, str(params["NAME"])], env=env, what=f"pg_dump of {schema or params['NAME']}")


def _normalise(text: str, schema: str) -> str:
    # The schema's name becomes "§"; parentheses go because PostgreSQL re-nests them when a dump is reloaded
    # ("((a AND b) AND c)" comes back as "(a AND b AND c)"), which is not a change of the schema.
    named = re.sub(rf'(?<![\w"])("{re.escape(schema)}"|{re.escape(schema)})\.', "§.", text or "")
    return named.replace("(", "").replace(")", "")


CATALOG_QUERIES = (
    # columns
    "SELECT 'col', c.relname || '.' || a.attname, c.relkind::text || ' ' || format_type(a.atttypid, a.atttypmod)"
    " || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END || ' ' || coalesce(pg_get_expr(d.adbin, d.adrelid), '')"
    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_attribute a ON a.attrelid = c.oid"
    " LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum"
    " WHERE n.nspname = %(s)s AND a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r','p','v','m','f')",
    "SELECT 'con', t.relname || '.' || c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint c"
    " JOIN pg_class t ON t.oid = c.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname = %(s)s",
    "SELECT 'idx', c.relname, pg_get_indexdef(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE n.nspname = %(s)s AND c.relkind = 'i'",
    "SELECT 'pol', c.relname || '.' || p.polname, p.polcmd::text || p.polpermissive::text || ' '"
    " || coalesce(pg_get_expr(p.polqual, p.polrelid), '') || ' '"
    " || coalesce(pg_get_expr(p.polwithcheck, p.polrelid), '')"
    " FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE n.nspname = %(s)s",
    "SELECT 'fn', p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')', pg_get_functiondef(p.oid)"
    " FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = %(s)s",
    "SELECT 'trg', c.relname || '.' || t.tgname, pg_get_triggerdef(t.oid) FROM pg_trigger t"
    " JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE n.nspname = %(s)s AND NOT t.tgisinternal",
    "SELECT 'seq', c.relname, c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE n.nspname = %(s)s AND c.relkind = 'S'",
)


def catalog_lines(conn: psycopg.Connection, schema: str) -> list[str]:
    """One line per catalog object of the schema, the schema's own name replaced by ``§``; sorted."""
    conn.execute("SET LOCAL search_path = pg_catalog")  # every name printed schema-qualified, then normalised
    lines: list[str] = []
    for query in CATALOG_QUERIES:
        for kind, name, definition in conn.execute(query, {"s": schema}).fetchall():
            lines.append(f"{kind} {name} {_normalise(definition, schema)}")
    return sorted(lines)


def schema_facts(conn: psycopg.Connection, schema: str) -> dict[str, Any]:
    """The schema's catalog fingerprint (independent of its name) and exact row count per table.

    Run inside the transaction whose snapshot the dump uses, so the counts are those of the dump.
    """
    lines = catalog_lines(conn, schema)
    tables = [
        row[0]
        for row in conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relkind IN ('r', 'p') ORDER BY c.relname",
            [schema],
        ).fetchall()
    ]
    counts: dict[str, int] = {}
    for table in tables:
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(table)))
        counts[table] = int(row.fetchone()[0])  # type: ignore[index]
    return {
        "fingerprint": hashlib.sha256("\n".join(lines).encode()).hexdigest(),
        "objects": len(lines),
        "row_counts": counts,
    }


# --- default privileges of a tenant's owner role ------------------------------------------------------
# Templates set them database-wide (ALTER DEFAULT PRIVILEGES FOR ROLE owner ...), and pg_dump -n leaves
# such defaults out, so a backup records them and a restore under new roles gives them to the new owner.
DEFAULT_ACL_KINDS = {"r": "TABLES", "S": "SEQUENCES", "f": "FUNCTIONS", "T": "TYPES", "n": "SCHEMAS"}
PRIVILEGES = {
    "r": "SELECT", "w": "UPDATE", "a": "INSERT", "d": "DELETE", "D": "TRUNCATE", "x": "REFERENCES", "t": "TRIGGER",
    "X": "EXECUTE", "U": "USAGE", "C": "CREATE", "m": "MAINTAIN",
}  # fmt: skip
ACL_ITEM = re.compile(r'^"?(?P<grantee>[^"=]*)"?=(?P<privileges>[A-Za-z*]*)/')


def owner_default_acl(conn: psycopg.Connection, owner: str) -> list[list[Any]]:
    """The owner's database-wide default privileges: ``[[object type, [aclitem text, ...]], ...]``."""
    rows = conn.execute(
        "SELECT d.defaclobjtype::text, d.defaclacl::text[] FROM pg_default_acl d JOIN pg_roles r"
        " ON r.oid = d.defaclrole WHERE r.rolname = %s AND d.defaclnamespace = 0 ORDER BY 1",
        [owner],
    ).fetchall()
    return [[kind, list(acl or [])] for kind, acl in rows]


def default_acl_statements(
    entries: list[list[Any]], *, roles: dict[str, str], new_owner: str, new_app: str
) -> list[sql.Composed]:
    """``ALTER DEFAULT PRIVILEGES`` statements that give ``new_owner`` the recorded defaults.

    Each recorded list replaces the built-in default for its object type, so the PUBLIC grant that
    PostgreSQL gives functions and types by default is revoked first and granted again only if recorded.
    """
    statements: list[sql.Composed] = []
    prefix = sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} ").format(sql.Identifier(new_owner))
    for kind, items in entries:
        objects = sql.SQL(DEFAULT_ACL_KINDS[kind])
        statements.append(prefix + sql.SQL("REVOKE ALL ON {} FROM PUBLIC").format(objects))
        for item in items:
            match = ACL_ITEM.match(item)
            if match is None or match["grantee"] == roles.get("owner"):
                continue
            privileges = [PRIVILEGES[c] for c in match["privileges"] if c in PRIVILEGES]
            grantee = match["grantee"]
            target = (
                sql.SQL("PUBLIC")
                if not grantee
                else sql.Identifier(new_owner if grantee == roles["owner"] else grantee)
            )
            if grantee == roles.get("app"):
                target = sql.Identifier(new_owner[: -len("_own")] + "_app")
            if privileges:
                statements.append(
                    prefix
                    + sql.SQL("GRANT {} ON {} TO {}").format(
                        sql.SQL(", ").join(map(sql.SQL, privileges)), objects, target
                    )
                )
    return statements
