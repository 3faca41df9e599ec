"""Benchmarks of the template engine (`tenant_sql`), against PostgreSQL driven by psql.

(a) applying the real templates 001-... into a new schema  vs  `psql -1 -f` of the same rendered files;
(b) `status --all` over N registered tenants (one query);
(c) rolling one new file out to N tenant schemas  vs  one psql session doing the same DDL and ledger
    insert per schema, each in its own transaction (DESIGN.md "Yardsticks for speed").

Runs in its own scratch databases (a PostgreSQL one for tenants, SQLite for the main database) and its
own role prefix, dropped afterwards. Prints the figures and writes bench/reports/engine.md.

    python bench/engine_bench.py [--tenants 1000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "bench" / "reports" / "engine.md"
RUN_ID = uuid.uuid4().hex[:6]
ROLE_PREFIX = f"gcb{RUN_ID}"
TENANT_URL = os.environ.get("TENANT_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ghostcrm_tenants")
BENCH_DB = f"ghostcrm_bench_engine_{RUN_ID}"
LOAD_AT_START = os.getloadavg()


def _url_with_db(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + dbname))


def _psql_env(url: str) -> dict[str, str]:
    parts = urlsplit(url)
    env = {**os.environ, "PGHOST": parts.hostname or "127.0.0.1", "PGPORT": str(parts.port or 5432),
           "PGDATABASE": parts.path.lstrip("/"), "PGUSER": parts.username or "postgres"}  # fmt: skip
    if parts.password:
        env["PGPASSWORD"] = parts.password
    return env


def _setup_django(tmp: Path) -> None:
    os.environ["TENANT_DATABASE_URL"] = _url_with_db(TENANT_URL, BENCH_DB)
    os.environ["MAIN_DATABASE_URL"] = f"sqlite:///{tmp / 'main.sqlite3'}"
    os.environ["TENANT_ROLE_PREFIX"] = ROLE_PREFIX
    os.environ.setdefault("GHOSTCRM_ENV", "development")
    os.environ["DJANGO_SETTINGS_MODULE"] = "ghostcrm.settings"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _admin_conn() -> Any:
    import psycopg

    return psycopg.connect(_url_with_db(TENANT_URL, "postgres"), autocommit=True)


def _median(samples: list[float]) -> float:
    return statistics.median(samples)


def _real_templates(tmp: Path) -> Path:
    """The project's templates, copied so the bench sees one consistent set."""
    source = ROOT / "migrations_sql" / "client-provisioning"
    target = tmp / "real"
    target.mkdir()
    for path in sorted(source.glob("*.pgsql")):
        shutil.copy(path, target / path.name)
    return target


def bench_apply_templates(tmp: Path, repeat: int) -> dict[str, Any]:
    """(a) engine schema_apply of the real templates vs psql -1 -f of the same rendered files."""
    from tenants.engine.lint import template_set_read
    from tenants.engine.services import (
        _schema_create_on,
        engine_connect,
        schema_apply,
        scratch_tenant_id,
        tenant_roles,
    )

    directory = _real_templates(tmp)
    templates = template_set_read(directory).templates
    conn = engine_connect()
    engine_s: list[float] = []
    psql_s: list[float] = []
    env = _psql_env(os.environ["TENANT_DATABASE_URL"])
    try:
        for i in range(repeat):
            engine_schema, psql_schema = f"bench_a_engine_{i}", f"bench_a_psql_{i}"
            for schema in (engine_schema, psql_schema):
                _schema_create_on(conn, schema=schema, app_password=None)
            started = time.perf_counter()
            schema_apply(schema=engine_schema, directory=directory, applied_by="bench")
            engine_s.append(time.perf_counter() - started)

            roles = tenant_roles(psql_schema)
            files = []
            for template in templates:
                path = tmp / f"psql_{i}_{template.filename}"
                path.write_text(
                    template.render(
                        owner_role=roles.owner, app_role=roles.app, tenant_id=scratch_tenant_id(psql_schema)
                    )
                )
                files += ["-f", str(path)]
            # Same conditions as the engine: the tenant's search_path only, objects owned by its owner role.
            run_env = {**env, "PGOPTIONS": f"-c search_path={psql_schema} -c role={roles.owner}"}
            started = time.perf_counter()
            psql = ["psql", "-X", "-q", "-1", "-v", "ON_ERROR_STOP=1", *files]
            subprocess.run(psql, env=run_env, check=True, stdout=subprocess.DEVNULL)  # noqa: S603
            psql_s.append(time.perf_counter() - started)
    finally:
        conn.close()
    engine, psql = _median(engine_s), _median(psql_s)
    return {
        "files": [t.filename for t in templates],
        "engine_s": engine,
        "psql_s": psql,
        "ratio": engine / psql,
        "repeat": repeat,
    }


def _setup_tenants(n: int) -> list[str]:
    """N registered tenant schemas, each with its roles and a 100-row table, through the engine (001)."""
    from django.conf import settings

    from tenants.engine.services import _schema_create_on, engine_connect
    from tenants.models import Tenant

    schemas = [f"bench_t{i:05d}" for i in range(n)]
    conn = engine_connect()
    try:
        for schema in schemas:
            _schema_create_on(conn, schema=schema, app_password=None)
    finally:
        conn.close()
    Tenant.objects.using(settings.TENANT_DB_ALIAS).bulk_create(
        [Tenant(schema_name=s, organization_id=uuid.uuid4()) for s in schemas], batch_size=500
    )
    return schemas


def _rollout_dir(tmp: Path, files: dict[str, str]) -> Path:
    directory = tmp / "rollout"
    directory.mkdir(exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


def _ddl(column: str) -> str:
    return (
        f"ALTER TABLE bench_items ADD COLUMN {column} text;\n"
        f"CREATE INDEX bench_items_{column}_idx ON bench_items ({column});\n"
    )


def _apply_command(*args: str) -> tuple[float, dict[str, Any]]:
    from django.core.management import call_command

    out = io.StringIO()
    started = time.perf_counter()
    call_command("tenant_sql", "apply", *args, "--json", stdout=out)
    elapsed = time.perf_counter() - started
    return elapsed, json.loads(out.getvalue())


def _psql_rollout(schemas: list[str], column: str, version: int, tmp: Path) -> float:
    """One psql session: per schema BEGIN; SET LOCAL search_path; the DDL; one ledger insert; COMMIT."""
    lines = []
    for schema in schemas:
        lines += [
            "BEGIN;",
            f"SET LOCAL search_path TO {schema};",
            _ddl(column).strip(),
            "INSERT INTO public.bench_psql_ledger (schema_name, version, description, filename, checksum, applied_by,"
            " duration_ms, success, sqlstate, error, failed_statement, applied_at) VALUES"
            f" ('{schema}', {version}, 'psql', 'psql.pgsql', '{'0' * 64}', 'bench', 0, true, '', '', '',"
            " clock_timestamp());",
            "COMMIT;",
        ]
    script = tmp / f"psql_rollout_{column}.sql"
    script.write_text("\n".join(lines) + "\n")
    env = _psql_env(os.environ["TENANT_DATABASE_URL"])
    started = time.perf_counter()
    psql = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", str(script)]
    subprocess.run(psql, env=env, check=True, stdout=subprocess.DEVNULL)  # noqa: S603
    return time.perf_counter() - started


def bench_rollout_and_status(tmp: Path, n: int) -> dict[str, Any]:
    from django.conf import settings
    from django.db import connections

    from tenants.engine.selectors import schemas_status

    schemas = _setup_tenants(n)
    base = {"001_items.pgsql": "CREATE TABLE bench_items (id bigint PRIMARY KEY, name text NOT NULL);\n"
            "INSERT INTO bench_items SELECT g, 'item ' || g FROM generate_series(1, 100) g;\n"}  # fmt: skip
    directory = _rollout_dir(tmp, base)
    setup_s, setup = _apply_command("--all", "--dir", str(directory), "--jobs", "2")
    assert setup["summary"]["failed"] == 0, setup["summary"]
    with connections[settings.TENANT_DB_ALIAS].cursor() as cursor:
        cursor.execute("CREATE TABLE public.bench_psql_ledger (LIKE public.tenant_sql_ledger INCLUDING ALL)")
        cursor.execute("VACUUM ANALYZE")

    figures: dict[str, Any] = {"tenants": n, "setup_001_jobs2_s": setup_s}
    figures["psql_1_s"] = _psql_rollout(schemas, "psql_a", 2, tmp)
    runs = [("engine_jobs1_s", "002_note_a.pgsql", "note_a", ["--jobs", "1"]),
            ("engine_jobs2_s", "003_note_b.pgsql", "note_b", ["--jobs", "2"])]  # fmt: skip
    for key, filename, column, extra in runs:
        (directory / filename).write_text(_ddl(column))
        elapsed, data = _apply_command("--all", "--dir", str(directory), *extra)
        assert data["summary"]["failed"] == 0 and data["summary"]["files_applied"] == n, data["summary"]
        figures[key] = elapsed
    # Processes instead of threads: two `manage.py tenant_sql apply` processes, half the tenants each.
    (directory / "004_note_c.pgsql").write_text(_ddl("note_c"))
    halves = [schemas[: n // 2], schemas[n // 2 :]]
    started = time.perf_counter()
    commands = [
        [
            sys.executable,
            "manage.py",
            "tenant_sql",
            "apply",
            "--tenants",
            ",".join(h),
            "--dir",
            str(directory),
            "--json",
        ]
        for h in halves
    ]
    procs = [
        subprocess.Popen(command, cwd=ROOT, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # noqa: S603
        for command in commands
    ]
    outputs = [p.communicate() for p in procs]
    figures["engine_2proc_s"] = time.perf_counter() - started
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err.decode()
        assert json.loads(out)["summary"]["failed"] == 0
    figures["psql_2_s"] = _psql_rollout(schemas, "psql_b", 3, tmp)
    psql = (figures["psql_1_s"] + figures["psql_2_s"]) / 2
    figures["psql_s"] = psql
    for key in ("engine_jobs1_s", "engine_jobs2_s", "engine_2proc_s"):
        figures[key.replace("_s", "_ratio")] = figures[key] / psql

    # (b) status over every registered tenant: the selector (one query) and the whole command.
    from django.core.management import call_command

    selector_s, command_s = [], []
    for _ in range(5):
        started = time.perf_counter()
        statuses = schemas_status(directory=directory)
        selector_s.append(time.perf_counter() - started)
        assert len(statuses) == n and all(s.state == "up_to_date" for s in statuses)
        out = io.StringIO()
        started = time.perf_counter()
        call_command("tenant_sql", "status", "--all", "--json", "--dir", str(directory), stdout=out)
        command_s.append(time.perf_counter() - started)
    figures["status_selector_s"] = _median(selector_s)
    figures["status_command_s"] = _median(command_s)
    return figures


def _cleanup() -> None:
    from django.db import connections

    connections.close_all()
    with _admin_conn() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        roles = conn.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE %s", [ROLE_PREFIX + "\\_%"]).fetchall()
        for (role,) in roles:
            conn.execute(f'DROP ROLE "{role}"')


def write_report(a: dict[str, Any], c: dict[str, Any]) -> str:
    n = c["tenants"]
    lines = [
        "# Template engine benchmark",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.node()} "
        f"({os.cpu_count()} cores, Python {platform.python_version()}, PostgreSQL on {urlsplit(TENANT_URL).hostname}; "
        f"load average {LOAD_AT_START[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end: "
        "the machine is shared), "
        "by `python bench/engine_bench.py` (also run by `make bench`).",
        "",
        "| what | engine | psql | ratio | target |",
        "| --- | --- | --- | --- | --- |",
        f"| (a) apply {', '.join(a['files'])} into a new schema (median of {a['repeat']}) "
        f"| {a['engine_s'] * 1000:.0f} ms"
        f" | {a['psql_s'] * 1000:.0f} ms (`psql -1 -f`) | {a['ratio']:.2f}x | within 1.2x |",
        f"| (c) roll one file out to {n} schemas, `--jobs 1` | {c['engine_jobs1_s']:.2f} s | {c['psql_s']:.2f} s "
        f"| {c['engine_jobs1_ratio']:.2f}x | within 1.5x |",
        f"| (c) same, `--jobs 2` (threads) | {c['engine_jobs2_s']:.2f} s | {c['psql_s']:.2f} s "
        f"| {c['engine_jobs2_ratio']:.2f}x | within 1.5x |",
        f"| (c) same, 2 processes of `apply --tenants` (half each) | {c['engine_2proc_s']:.2f} s | {c['psql_s']:.2f} s "
        f"| {c['engine_2proc_ratio']:.2f}x | |",
        f"| (b) `status --all` over {n} tenants: selector (one query) | {c['status_selector_s'] * 1000:.0f} ms | | "
        "| < 1 s |",
        f"| (b) `status --all --json` over {n} tenants: whole command | {c['status_command_s'] * 1000:.0f} ms | | "
        "| < 1 s |",
        "",
        "psql figure for (c): the mean of two psql runs (before and after the engine's), one session, per schema "
        "`BEGIN; SET LOCAL search_path; ALTER TABLE ... ADD COLUMN; CREATE INDEX (100-row table); ledger INSERT; "
        "COMMIT`. The engine's figure is the whole `tenant_sql apply --all --json` command: registry query, lint of "
        "the directory, one query for every schema's applied versions, then per schema one round trip (BEGIN, "
        "SET LOCAL search_path, advisory lock, ledger check, SET LOCAL ROLE) and one more (the file, its ledger row, "
        "COMMIT); "
        f"connections recycled every 300 schemas. Setting up {n} schemas' 100-row table through the engine "
        f"(`--jobs 2`): {c['setup_001_jobs2_s']:.2f} s.",
        "",
        "(a): the engine opens its connection and applies each file in its own transaction with its ledger row; "
        "psql runs the same rendered files in one transaction with the same search_path and role.",
        "",
    ]
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text("\n".join(lines))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=int(os.environ.get("BENCH_TENANTS", "1000")))
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if shutil.which("psql") is None:
        print("engine bench: psql is not installed (apt-get install postgresql-client)", file=sys.stderr)
        return 2
    with _admin_conn() as conn:
        conn.execute(f'CREATE DATABASE "{BENCH_DB}"')
    tmp = Path(tempfile.mkdtemp(prefix="engine_bench_"))
    try:
        _setup_django(tmp)
        print(f"engine bench: {args.tenants} tenants, database {BENCH_DB}", flush=True)
        a = bench_apply_templates(tmp, args.repeat)
        print(f"(a) apply {a['files']}: engine {a['engine_s'] * 1000:.0f} ms, psql -1 -f {a['psql_s'] * 1000:.0f} ms,"
              f" ratio {a['ratio']:.2f}", flush=True)  # fmt: skip
        c = bench_rollout_and_status(tmp, args.tenants)
        for key, value in c.items():
            print(f"    {key}: {value:.3f}" if isinstance(value, float) else f"    {key}: {value}", flush=True)
        print(write_report(a, c))
    finally:
        _cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
