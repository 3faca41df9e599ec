"""Workload 3: roll one new file (ADD COLUMN + an index on a populated 100-row table) out to N clients
against (a) one psql session doing the same DDL and a ledger insert per schema, each in its own transaction.

The fleet: N scratch schemas made by `tenant_sql apply --tenants ... --create-schema` (schema, roles and a
100-row table from a bench template), then registered in bulk in the tenant registry with one INSERT.
Alternating per round: `apply --all --jobs 1`, `apply --all --jobs 2`, the psql session; `--repeat` rounds.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.common import Stack, run_psql, stack, summary
from bench.dt_project import DtProject, dt_project
from bench.engine_bench import _ddl

BASE = (
    "CREATE TABLE bench_items (id bigint PRIMARY KEY, name text NOT NULL);\n"
    "INSERT INTO bench_items SELECT g, 'item ' || g FROM generate_series(1, 100) g;\n"
)


def timed_manage(s: Stack, *args: str) -> tuple[float, str]:
    started = time.perf_counter()
    out = s.manage(*args).stdout
    return time.perf_counter() - started, out


def fleet_add(s: Stack, directory: Path, schemas: list[str], *, chunk: int = 500) -> None:
    """Create scratch schemas with the bench template through the engine, then register them in one INSERT."""
    for i in range(0, len(schemas), chunk):
        part = schemas[i : i + chunk]
        s.manage(
            "tenant_sql",
            "apply",
            "--tenants",
            ",".join(part),
            "--create-schema",
            "--dir",
            str(directory),
            "--jobs",
            "2",
            "--json",
        )
    with s.tenant_conn() as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO tenants_tenant (schema_name, organization_id, created_at) VALUES (%s, %s, now())",
            [(schema, uuid.uuid4()) for schema in schemas],
        )
        cur.execute("VACUUM ANALYZE")


@contextmanager
def fleet(n: int) -> Iterator[tuple[Stack, Path]]:
    with stack() as s, tempfile.TemporaryDirectory(prefix="bench_fleet_") as tmpdir:
        directory = Path(tmpdir) / "templates"
        directory.mkdir()
        (directory / "001_items.pgsql").write_text(BASE)
        fleet_add(s, directory, [f"bench_t{i:05d}" for i in range(n)])
        yield s, directory


@contextmanager
def dt_fleet(n: int) -> Iterator[DtProject]:
    """The same N schemas and 100-row table under django-tenants: 0001 = RunSQL(BASE), applied by
    migrate_schemas (multiprocessing) to N tenants registered in bulk (untimed set-up)."""
    with dt_project(BASE) as dt:
        names = [f"bench_t{i:05d}" for i in range(n)]
        for i in range(0, n, 1000):
            dt.tenant_times("register", names[i : i + 1000])
        dt.manage("migrate_schemas", "--tenant", "--executor", "multiprocessing")
        yield dt


def dt_rounds(dt: DtProject, repeat: int, tag: str = "") -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"standard": [], "multiprocessing": []}
    for r in range(repeat):
        for executor in ("standard", "multiprocessing"):
            dt.add_migration(_ddl(f"dt{tag}_{r}_{executor[:5]}"))
            out[executor].append(dt.timed("migrate_schemas", "--tenant", "--executor", executor, processes=4))
    return out


def schemas_of(s: Stack) -> list[str]:
    with s.tenant_conn() as conn:
        return [r[0] for r in conn.execute("SELECT schema_name FROM tenants_tenant ORDER BY schema_name")]


def psql_rollout(s: Stack, schemas: list[str], column: str, tmp: Path) -> float:
    """One psql session: per schema BEGIN; SET LOCAL search_path; the DDL; a ledger INSERT; COMMIT."""
    lines = [
        "SET client_min_messages = warning;",
        "CREATE TABLE IF NOT EXISTS public.bench_psql_ledger (schema_name text, filename text, checksum text,"
        " applied_at timestamptz);",
    ]
    for schema in schemas:
        lines += [
            "BEGIN;",
            f"SET LOCAL search_path TO {schema};",
            _ddl(column).strip(),
            f"INSERT INTO public.bench_psql_ledger VALUES ('{schema}', '{column}.pgsql', '{'0' * 64}',"
            " clock_timestamp());",
            "COMMIT;",
        ]
    script = tmp / f"psql_{column}.sql"
    script.write_text("\n".join(lines) + "\n")
    return run_psql([script], s.psql_env(), single=False)


def rollout_rounds(s: Stack, directory: Path, repeat: int, tag: str = "") -> dict[str, list[float]]:
    schemas = schemas_of(s)
    out: dict[str, list[float]] = {"jobs1": [], "jobs2": [], "psql": []}
    version = len(list(directory.glob("*.pgsql")))
    for r in range(repeat):
        for key, jobs in (("jobs1", "1"), ("jobs2", "2")):
            version += 1
            column = f"note{tag}_{r}_{key}"
            (directory / f"{version:03d}_{column}.pgsql").write_text(_ddl(column))
            elapsed, _ = timed_manage(
                s, "tenant_sql", "apply", "--all", "--jobs", jobs, "--json", "--dir", str(directory)
            )
            out[key].append(elapsed)
        out["psql"].append(psql_rollout(s, schemas, f"psql{tag}_{r}", directory.parent))
    return out


def run(args: Any) -> dict[str, Any]:
    n = args.tenants
    rounds: dict[str, list[float]] = {}
    with fleet(n) as (s, directory), dt_fleet(n) as dt:
        for r in range(args.repeat):  # alternating: ours (jobs 1, jobs 2, psql), then django-tenants
            for key, values in rollout_rounds(s, directory, 1, tag=str(r)).items():
                rounds.setdefault(key, []).extend(values)
            for key, values in dt_rounds(dt, 1, tag=str(r)).items():
                rounds.setdefault(key, []).extend(values)
    psql = summary(rounds["psql"])
    rows = []
    for key, label, target in (("jobs1", "--jobs 1", ""), ("jobs2", "--jobs 2", "<= 0.6x")):
        ours = summary(rounds[key])
        rows.append(
            {
                "what": f"rollout of one file to {n} clients, apply --all {label}",
                "ours": ours,
                "ref": psql,
                "ref_name": "one psql session",
                "ratio": ours["median"] / psql["median"],
                "target": target,
            }
        )
    jobs2 = summary(rounds["jobs2"])
    for executor, target in (("standard", ""), ("multiprocessing", "<= 0.05x (20x faster)")):
        ref = summary(rounds[executor])
        rows.append(
            {
                "what": f"rollout of one file to {n} clients, apply --all --jobs 2",
                "ours": jobs2,
                "ref": ref,
                "ref_name": f"migrate_schemas --executor {executor}" + (" (4 processes)" if executor[0] == "m" else ""),
                "ratio": jobs2["median"] / ref["median"],
                "target": target,
            }
        )
    return {"rows": rows}
