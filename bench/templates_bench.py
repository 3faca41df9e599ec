"""Benchmarks of the client schema templates: applying them, and what row-level security costs.

(a) `psql -1 -v ON_ERROR_STOP=1 -f` of each rendered template into a new schema;
(b) with N contacts and N/3 deals spread over three reps (10% private), the CRM's common reads run as the
    tenant's app role (member, manager, admin) and, for reference, as the superuser (no row security):
    count, e-mail prefix search, full-text search, the pipeline board, one deal's timeline.

Runs in its own scratch database and role prefix, dropped afterwards. Prints the figures and writes
bench/reports/templates.md.

    python bench/templates_bench.py [--contacts 30000] [--repeat 5]
"""

from __future__ import annotations

import argparse
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

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tenants.engine.lint import template_set_read  # noqa: E402

REPORT = ROOT / "bench" / "reports" / "templates.md"
TEMPLATES = ROOT / "migrations_sql" / "client-provisioning"
RUN_ID = uuid.uuid4().hex[:6]
SCHEMA = "bench_crm"
OWNER, APP = f"gcbt{RUN_ID}_own", f"gcbt{RUN_ID}_app"
APP_PASSWORD = uuid.uuid4().hex
TENANT_URL = os.environ.get("TENANT_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ghostcrm_tenants")
BENCH_DB = f"ghostcrm_bench_templates_{RUN_ID}"

QUERIES = {
    "count(*) contacts": "SELECT count(*) FROM contacts",
    "e-mail prefix search": "SELECT id FROM contacts WHERE lower(email) LIKE 'p2999%' AND deleted_at IS NULL",
    "full-text search": "SELECT id FROM contacts WHERE search_vector @@ plainto_tsquery('simple', 'last12345')",
    "pipeline board (open deals by stage)": (
        "SELECT stage_id, count(*), sum(amount) FROM deals WHERE pipeline_id = (SELECT id FROM pipelines"
        " WHERE is_default) AND closed_at IS NULL AND deleted_at IS NULL GROUP BY stage_id"
    ),
    # {deal} is one of the first rep's deals, looked up after seeding.
    "one deal's timeline": "SELECT subject, starts_at FROM activities WHERE deal_id = '{deal}' ORDER BY starts_at DESC",
}


def url_for(database: str) -> str:
    parts = urlsplit(TENANT_URL)
    return urlunsplit(parts._replace(path=f"/{database}"))


def timed(conn: psycopg.Connection[Any], query: str, repeat: int) -> float:
    conn.execute(query).fetchall()  # warm
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        conn.execute(query).fetchall()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def seed(conn: psycopg.Connection[Any], contacts: int) -> dict[str, str]:
    users = {}
    for email, role in (("admin@b.test", "admin"), ("mgr@b.test", "manager"), ("rep1@b.test", "member"),
                        ("rep2@b.test", "member"), ("rep3@b.test", "member")):  # fmt: skip
        row = conn.execute("INSERT INTO crm_users (email, role) VALUES (%s, %s) RETURNING id", [email, role]).fetchone()
        assert row is not None
        users[email] = str(row[0])
    team = conn.execute("INSERT INTO teams (name) VALUES ('East') RETURNING id").fetchone()
    assert team is not None
    for email in ("mgr@b.test", "rep1@b.test", "rep2@b.test"):  # rep3 works alone
        conn.execute("INSERT INTO team_members (team_id, user_id) VALUES (%s, %s)", [team[0], users[email]])
    reps = [users["rep1@b.test"], users["rep2@b.test"], users["rep3@b.test"]]
    conn.execute(
        "INSERT INTO contacts (owner_id, first_name, last_name, email, is_private)"
        " SELECT (%s::uuid[])[1 + g %% 3], 'First' || g, 'Last' || g, 'p' || g || '@example.com', g %% 10 = 0"
        " FROM generate_series(1, %s) g",
        [reps, contacts],
    )
    conn.execute(
        "INSERT INTO deals (owner_id, name, amount, currency, pipeline_id, stage_id, is_private, contact_id)"
        " SELECT (%s::uuid[])[1 + g %% 3], 'Deal ' || g, g %% 500 * 100, 'EUR', s.pipeline_id, s.id, g %% 10 = 0, NULL"
        " FROM generate_series(1, %s) g"
        " JOIN LATERAL (SELECT id, pipeline_id FROM pipeline_stages WHERE position = g %% 4) s ON true",
        [reps, contacts // 3],
    )
    conn.execute(
        "INSERT INTO activities (owner_id, activity_type, subject, deal_id, starts_at)"
        " SELECT d.owner_id, 'call', 'Call ' || n, d.id, now() - n * interval '1 day'"
        " FROM (SELECT id, owner_id FROM deals ORDER BY id LIMIT 200) d, generate_series(1, 10) n"
    )
    conn.execute("ANALYZE")
    return users


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=int(os.environ.get("BENCH_CONTACTS", "30000")))
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    psql = shutil.which("psql")
    if psql is None:
        print("templates bench: psql (the PostgreSQL client) is needed", file=sys.stderr)
        return 2
    admin_url = url_for("postgres")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(BENCH_DB)))
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(OWNER)))
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(APP), sql.Literal(APP_PASSWORD)))
    lines: list[str] = []
    try:
        with psycopg.connect(url_for(BENCH_DB), autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(sql.Identifier(SCHEMA), sql.Identifier(OWNER))
            )
            conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(SCHEMA), sql.Identifier(APP)))
        apply_times = []
        with tempfile.TemporaryDirectory() as folder:
            for template in template_set_read(TEMPLATES).templates:
                rendered = Path(folder) / template.filename
                rendered.write_text(template.render(owner_role=OWNER, app_role=APP, tenant_id=str(uuid.uuid4())))
                started = time.perf_counter()
                command = [psql, "-X", "-q", "-1", "-v", "ON_ERROR_STOP=1", "-d", url_for(BENCH_DB)]
                command += ["-c", f'SET LOCAL search_path TO "{SCHEMA}"', "-c", f'SET LOCAL ROLE "{OWNER}"']
                subprocess.run([*command, "-f", str(rendered)], check=True, capture_output=True)  # noqa: S603
                apply_times.append((template.filename, time.perf_counter() - started))
        with psycopg.connect(url_for(BENCH_DB), autocommit=True) as conn:
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(SCHEMA)))
            users = seed(conn, args.contacts)
            sessions: dict[str, psycopg.Connection[Any]] = {"superuser (no row security)": conn}
            for label, email, role in (
                ("admin", "admin@b.test", "admin"),
                ("manager (team of 3)", "mgr@b.test", "manager"),
                ("member (team of 3)", "rep1@b.test", "member"),
            ):
                app = psycopg.connect(
                    url_for(BENCH_DB).replace("postgres@", f"{APP}:{APP_PASSWORD}@", 1), autocommit=True
                )
                app.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(SCHEMA)))
                app.execute(
                    "SELECT set_config('app.user_id', %s, false), set_config('app.role', %s, false)",
                    [users[email], role],
                )
                sessions[label] = app
            deal = conn.execute(
                "SELECT deal_id FROM activities a JOIN deals d ON d.id = a.deal_id"
                " WHERE d.owner_id = %s AND NOT d.is_private LIMIT 1",
                [users["rep1@b.test"]],
            ).fetchone()
            assert deal is not None
            results = {
                (name, label): timed(session, query.replace("{deal}", str(deal[0])), args.repeat)
                for name, query in QUERIES.items()
                for label, session in sessions.items()
            }
            for session in sessions.values():
                if session is not conn:
                    session.close()
        load = os.getloadavg()
        lines += [
            "# Client schema templates: apply time and row-level security cost",
            "",
            f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, load average {load[0]:.2f}.",
            f"Command: `python bench/templates_bench.py --contacts {args.contacts} --repeat {args.repeat}`"
            " (median of the repeats, after one warm-up run).",
            "",
            "## Applying the templates (`psql -1 -v ON_ERROR_STOP=1 -f`, new schema, incl. psql start-up)",
            "",
            "| file | seconds |",
            "| --- | --- |",
            *[f"| {name} | {seconds:.3f} |" for name, seconds in apply_times],
            "",
            f"## Reads with {args.contacts} contacts, {args.contacts // 3} deals, 2,000 activities (milliseconds)",
            "",
            "| query | " + " | ".join(sessions) + " |",
            "| --- | " + " | ".join("---" for _ in sessions) + " |",
            *[
                f"| {name} | " + " | ".join(f"{results[(name, label)] * 1000:.1f}" for label in sessions) + " |"
                for name in QUERIES
            ],
            "",
        ]
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(BENCH_DB)))
            for role in (APP, OWNER):
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
    report = "\n".join(lines)
    print(report)
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
