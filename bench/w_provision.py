"""Workload 1: provision one client end to end (request -> worker -> active, as the product records it)
against (a) `psql -1 -f` of the same templates into a new schema.

Ours: `manage.py provision_client --wait` with one `run_worker` running; the figure is the organisation's
activated_at - created_at (what `tenants show` reports), with the per-step durations of its operation rows.
(a): CREATE ROLE x2 + CREATE SCHEMA in one psql call (untimed, as the engine bench), then the timed
`psql -1 -f` of the rendered templates with the tenant's search_path and owner role.
Alternating ours / psql, `--repeat` times.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.common import BenchError, Stack, render_templates, run_psql, stack, summary
from bench.dt_project import dt_project

SLUG = re.compile(r"\(([a-z0-9-]+), id ")


def _worker(s: Stack) -> subprocess.Popen[bytes]:
    return s.popen("run_worker", "provisioning", "default", "--no-cron")


def provision_once(s: Stack, name: str) -> dict[str, Any]:
    """One request through provision_client --wait; the recorded time to active and the steps."""
    started = time.perf_counter()
    out = s.manage(
        "provision_client", "--name", name, "--admin-email", "bench@example.com", "--wait", "--timeout", "300"
    ).stdout
    wall = time.perf_counter() - started
    match = SLUG.search(out)
    if match is None:
        raise BenchError("provision_client", out)
    data = s.manage_json("tenants", "show", match.group(1), "--json")
    if data["status"] != "active":
        raise BenchError(name, str(data["status"]) + ": " + str(data.get("last_error")))
    took = (datetime.fromisoformat(data["activated_at"]) - datetime.fromisoformat(data["created_at"])).total_seconds()
    steps: dict[str, float] = {}
    for op in data["operations"]:
        if op.get("duration_ms") is not None:
            steps[op["step"]] = steps.get(op["step"], 0.0) + op["duration_ms"] / 1000
    return {"recorded_s": took, "command_wall_s": wall, "steps_s": steps, "schema": data["schema_name"]}


def psql_once(s: Stack, tmp: Path, i: int) -> float:
    schema = f"bench_psql_{i}_{uuid.uuid4().hex[:4]}"
    owner, app = f"{s.role_prefix}_{schema}_o", f"{s.role_prefix}_{schema}_a"
    setup = tmp / f"setup_{schema}.sql"
    setup.write_text(
        f'CREATE ROLE "{owner}" NOLOGIN; CREATE ROLE "{app}" NOLOGIN;\n'
        f'GRANT "{owner}" TO CURRENT_USER; CREATE SCHEMA "{schema}" AUTHORIZATION "{owner}";\n'
        f'GRANT USAGE ON SCHEMA "{schema}" TO "{app}";\n'
    )
    run_psql([setup], s.psql_env())
    files = []
    for n, text in enumerate(render_templates(owner_role=owner, app_role=app, tenant_id=str(uuid.uuid4()))):
        path = tmp / f"{schema}_{n}.sql"
        path.write_text(text)
        files.append(path)
    return run_psql(files, s.psql_env(PGOPTIONS=f"-c search_path={schema} -c role={owner}"))


def _dt_sql(s: Stack) -> str:
    """Our templates rendered for django-tenants: one owner and one app role shared by every tenant."""
    owner, app = f"{s.role_prefix}_dt_o", f"{s.role_prefix}_dt_a"
    with s.tenant_conn() as conn:
        conn.execute(f'CREATE ROLE "{owner}" NOLOGIN')
        conn.execute(f'CREATE ROLE "{app}" NOLOGIN')
    return "\n".join(render_templates(owner_role=owner, app_role=app, tenant_id=str(uuid.uuid4())))


def _ref_row(recorded: dict[str, Any], samples: list[float], name: str) -> dict[str, Any]:
    ref = summary(samples)
    what = "provision one client, request to active (recorded)"
    return {
        "what": what,
        "ours": recorded,
        "ref": ref,
        "ref_name": name,
        "ratio": recorded["median"] / ref["median"],
        "target": "",
    }


def run(args: Any) -> dict[str, Any]:
    ours: list[dict[str, Any]] = []
    psql: list[float] = []
    dt_create: list[float] = []
    dt_clone: list[float] = []
    with stack() as s, tempfile.TemporaryDirectory(prefix="bench_prov_") as tmpdir, dt_project(_dt_sql(s)) as dt:
        worker = _worker(s)
        try:
            provision_once(s, "Bench warm-up")  # the worker's first job imports everything
            dt.tenant_times("create", ["dt_base"])
            for i in range(args.repeat):
                ours.append(provision_once(s, f"Bench client {i}"))
                psql.append(psql_once(s, Path(tmpdir), i))
                dt_create += dt.tenant_times("create", [f"dt_create_{i}"])
                dt_clone += dt.tenant_times("clone", [f"dt_clone_{i}"], base="dt_base")
        finally:
            worker.terminate()
            worker.wait(timeout=30)
    recorded = summary([o["recorded_s"] for o in ours])
    limit = summary(psql)
    step_names = sorted({k for o in ours for k in o["steps_s"]})
    steps = {k: summary([o["steps_s"].get(k, 0.0) for o in ours])["median"] for k in step_names}
    return {
        "rows": [
            {
                "what": "provision one client, request to active (recorded)",
                "ours": recorded,
                "ref": limit,
                "ref_name": "psql -1 -f templates",
                "ratio": recorded["median"] / limit["median"],
                "target": "<= 1.2x",
            },
            _ref_row(recorded, dt_create, "django-tenants Client().save() (migration = RunSQL of the templates)"),
            _ref_row(recorded, dt_clone, "django-tenants clone_schema from a base tenant"),
            {
                "what": "provision_client --wait, whole command (incl. Django start, 0.5 s polling)",
                "ours": summary([o["command_wall_s"] for o in ours]),
                "ref": None,
                "ref_name": "",
                "ratio": None,
                "target": "",
            },
        ],
        "steps_median_s": steps,
        "repeat": args.repeat,
    }
