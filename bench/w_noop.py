"""Workload 4: no-op `tenant_sql status --all` and no-op `tenant_sql apply --all` over N up-to-date clients."""

from __future__ import annotations

from typing import Any

from bench.common import summary
from bench.w_rollout import fleet, timed_manage


def run(args: Any) -> dict[str, Any]:
    with fleet(args.tenants) as (s, directory):
        status, apply = [], []
        for _ in range(args.repeat):
            status.append(timed_manage(s, "tenant_sql", "status", "--all", "--json", "--dir", str(directory))[0])
            apply.append(timed_manage(s, "tenant_sql", "apply", "--all", "--json", "--dir", str(directory))[0])
    n = args.tenants
    return {
        "rows": [
            {
                "what": f"status --all, {n} clients (whole command)",
                "ours": summary(status),
                "ref": None,
                "ref_name": "migrate_schemas no-op: not run yet",
                "ratio": None,
                "target": ">= 50x faster",
            },
            {
                "what": f"no-op apply --all, {n} clients (whole command)",
                "ours": summary(apply),
                "ref": None,
                "ref_name": "migrate_schemas no-op: not run yet",
                "ratio": None,
                "target": ">= 50x faster",
            },
        ],
    }
