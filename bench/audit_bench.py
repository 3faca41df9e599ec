"""Benchmark of the audit log: audit writes per second from 8 concurrent writers.

Each writer is its own process with its own connection to a scratch PostgreSQL main database, calling
``audit_record`` in a loop for a fixed time, in two shapes:

- ``bare``: each event in its own transaction (an API request's refused-key event);
- ``in-transaction``: each event inside a caller's transaction that does 5 ms of other work after
  recording, as services do (whatever the audit write locks is held until the caller commits).

When the code has a sealer (``audit_seal``), a ninth process seals continuously, as the periodic job does,
and the report says how far behind it was at the end.

    python bench/audit_bench.py --label before|after [--seconds 8] [--writers 8]

Figures are kept per label in bench/reports/audit.json and rendered to bench/reports/audit.md, so a run
on the old code ("before") and one on the new ("after") sit side by side. Scratch databases are dropped.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing as mp
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "bench" / "reports"
RUN_ID = os.environ.setdefault("AUDIT_BENCH_RUN", uuid.uuid4().hex[:6])  # spawned writers share it
PG_URL = os.environ.get("TENANT_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ghostcrm_tenants")
MAIN_DB = f"ghostcrm_bench_audit_main_{RUN_ID}"
TENANT_DB = f"ghostcrm_bench_audit_tenants_{RUN_ID}"
HOLD_SECONDS = 0.005


def _url_with_db(url: str, dbname: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + dbname))


def _setup_django() -> None:
    os.environ["MAIN_DATABASE_URL"] = _url_with_db(PG_URL, MAIN_DB)
    os.environ["TENANT_DATABASE_URL"] = _url_with_db(PG_URL, TENANT_DB)
    os.environ["TENANT_ROLE_PREFIX"] = f"gcba{RUN_ID}"
    os.environ["CONN_MAX_AGE"] = "600"
    os.environ.setdefault("GHOSTCRM_ENV", "development")
    os.environ["DJANGO_SETTINGS_MODULE"] = "ghostcrm.settings"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings

    # Checkpoints go to a scratch folder, not the project's var/backups (code before checkpoints has none).
    if "backups" in settings.STORAGES:
        backups = os.environ.setdefault("AUDIT_BENCH_BACKUPS", tempfile.mkdtemp(prefix="audit-bench-"))
        scratch = {**settings.STORAGES["backups"], "OPTIONS": {"location": backups}}
        settings.STORAGES = {**settings.STORAGES, "backups": scratch}


def _admin_sql(statement: str) -> None:
    import psycopg

    with psycopg.connect(_url_with_db(PG_URL, "postgres"), autocommit=True) as conn:
        conn.execute(statement)


def _writer(number: int, shape: str, seconds: float, start_at: float, results: Any) -> None:
    try:
        _write_for(number, shape, seconds, start_at, results)
    except Exception as exc:
        results.put(repr(exc))  # the parent stops with it rather than waiting out its timeout
        raise


def _write_for(number: int, shape: str, seconds: float, start_at: float, results: Any) -> None:
    _setup_django()
    from django.db import connection, transaction

    from ghostcrm.audit.services import Actor, audit_record

    actor = Actor.system(f"bench-{number}")
    connection.ensure_connection()
    while time.time() < start_at:
        time.sleep(0.001)
    count, deadline = 0, time.time() + seconds
    while time.time() < deadline:
        if shape == "bare":
            audit_record(action="bench.write", actor=actor, message="x" * 40)
        else:
            with transaction.atomic():
                audit_record(action="bench.write", actor=actor, message="x" * 40)
                time.sleep(HOLD_SECONDS)
        count += 1
    results.put(count)
    connection.close()


def _sealer(stop_at: float, results: Any) -> None:
    _setup_django()
    from django.db import connection

    from ghostcrm.audit import sealing  # type: ignore[attr-defined,unused-ignore]

    sealed = 0
    while time.time() < stop_at:
        sealed += sealing.audit_seal().sealed
        time.sleep(0.2)
    results.put(sealed)
    connection.close()


def _has_sealer() -> bool:
    return importlib.util.find_spec("ghostcrm.audit.sealing") is not None


def _unsealed() -> int:
    from ghostcrm.audit.models import AuditEvent

    if not _has_sealer():
        return 0
    return AuditEvent.objects.filter(sequence__isnull=True).count()


def run_shape(shape: str, writers: int, seconds: float, sealer: bool) -> dict[str, Any]:
    from ghostcrm.audit.models import AuditEvent

    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    before = AuditEvent.objects.count()
    start_at = time.time() + 8  # every process set up and connected before the clock starts
    procs = [ctx.Process(target=_writer, args=(i, shape, seconds, start_at, results)) for i in range(writers)]
    seal_results = ctx.Queue()
    seal_proc = ctx.Process(target=_sealer, args=(start_at + seconds, seal_results)) if sealer else None
    for proc in [*procs, *([seal_proc] if seal_proc else [])]:
        proc.start()
    counts = [results.get(timeout=seconds + 120) for _ in procs]
    if errors := [count for count in counts if not isinstance(count, int)]:
        raise RuntimeError(f"a writer failed: {errors[0]}")
    for proc in procs:
        proc.join(timeout=60)
    sealed = seal_results.get(timeout=120) if seal_proc else None
    if seal_proc:
        seal_proc.join(timeout=60)
    written = AuditEvent.objects.count() - before
    assert written == sum(counts), (written, counts)
    row: dict[str, Any] = {
        "shape": shape,
        "writers": writers,
        "seconds": seconds,
        "events": written,
        "per_second": round(written / seconds, 1),
    }
    if sealer:
        row["sealed_during_run"] = sealed
        row["unsealed_at_end"] = _unsealed()
    return row


def verify_after() -> str:
    from ghostcrm.audit import selectors

    if _has_sealer():
        from ghostcrm.audit.jobs import audit_seal_job  # type: ignore[import-not-found,unused-ignore]

        audit_seal_job()
    report = selectors.audit_chain_verify()
    return f"{'intact' if report.ok else 'BROKEN: ' + report.reason}, {report.checked} events"


def render(runs: dict[str, Any]) -> str:
    lines = [
        "# Audit log: writes per second from concurrent writers",
        "",
        "`python bench/audit_bench.py --label LABEL` (PostgreSQL main database, one process per writer).",
        "`bare`: each event in its own transaction; `in-transaction`: each event inside a caller's transaction",
        f"that works {HOLD_SECONDS * 1000:.0f} ms after recording, as services do. `before` is the code with",
        "one locked head row per write; `after` appends without a shared lock and a sealer chains the rows.",
        "",
        "| label | shape | writers | events | events/s | sealed during run | unsealed at end | chain | load |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label, run in runs.items():
        for row in run["rows"]:
            lines.append(
                f"| {label} | {row['shape']} | {row['writers']} | {row['events']} | {row['per_second']} | "
                f"{row.get('sealed_during_run', '-')} | {row.get('unsealed_at_end', '-')} | {run['chain']} | "
                f"{run['load']} |"
            )
    lines += ["", "Machines:", ""]
    lines += [f"- {label}: {run['machine']}, commit {run['commit']}, {run['when']}" for label, run in runs.items()]
    lines += [
        "",
        "Figures vary between machines and with load (2 shared cores here, shared with other jobs): compare runs",
        "taken back to back on one machine. `unsealed at end` is how far the sealer (one process, sealing every",
        "0.2 s) was behind the writers when they stopped; `audit_verify` raises an alarm when rows stay unsealed",
        "longer than AUDIT_SEAL_MAX_LAG.",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--label", default="current")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--writers", type=int, default=8)
    args = parser.parse_args()
    for name in (MAIN_DB, TENANT_DB):
        _admin_sql(f'CREATE DATABASE "{name}"')
    try:
        _setup_django()
        from django.core.management import call_command
        from django.db import connections

        call_command("migrate", verbosity=0)
        sealer = _has_sealer()
        rows = [run_shape(shape, args.writers, args.seconds, sealer) for shape in ("bare", "in-transaction")]
        chain = verify_after()
        connections.close_all()
    finally:
        for name in (MAIN_DB, TENANT_DB):
            _admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607
        cwd=ROOT, capture_output=True, text=True, check=False,
    ).stdout.strip()  # fmt: skip
    run = {
        "rows": rows,
        "chain": chain,
        "load": f"{os.getloadavg()[0]:.1f}",
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "commit": commit,
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    for row in rows:
        print(f"{args.label:8} {row['shape']:15} {row['writers']} writers: {row['per_second']:8.1f} events/s", end="")
        print(f"  (unsealed at end: {row['unsealed_at_end']})" if "unsealed_at_end" in row else "")
    print(f"chain after the run: {chain}")
    REPORTS.mkdir(parents=True, exist_ok=True)
    store = REPORTS / "audit.json"
    runs = json.loads(store.read_text()) if store.exists() else {}
    runs[args.label] = run
    store.write_text(json.dumps(runs, indent=2) + "\n")
    (REPORTS / "audit.md").write_text(render(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
