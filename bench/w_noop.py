"""Workload 4: no-op `tenant_sql status --all` and no-op `tenant_sql apply --all` over N up-to-date clients,
against a no-op `migrate_schemas --tenant` (standard executor) over the same N schemas under django-tenants.
Whole commands (process start included for both products), alternating, `--repeat` times."""

from __future__ import annotations

from typing import Any

from bench.common import summary
from bench.w_rollout import dt_fleet, fleet, timed_manage


def run(args: Any) -> dict[str, Any]:
    status, apply, migrate = [], [], []
    with fleet(args.tenants) as (s, directory), dt_fleet(args.tenants) as dt:
        for _ in range(args.repeat):
            status.append(timed_manage(s, "tenant_sql", "status", "--all", "--json", "--dir", str(directory))[0])
            apply.append(timed_manage(s, "tenant_sql", "apply", "--all", "--json", "--dir", str(directory))[0])
            migrate.append(dt.timed("migrate_schemas", "--tenant", "--executor", "standard"))
    n = args.tenants
    ref = summary(migrate)
    rows = []
    for what, samples in ((f"status --all, {n} clients", status), (f"no-op apply --all, {n} clients", apply)):
        ours = summary(samples)
        rows.append(
            {
                "what": what,
                "ours": ours,
                "ref": ref,
                "ref_name": "no-op migrate_schemas --tenant",
                "ratio": ours["median"] / ref["median"],
                "target": "<= 0.02x (50x faster)",
            }
        )
    return {"rows": rows}
