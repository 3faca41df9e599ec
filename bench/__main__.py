"""`python -m bench` (`make bench`): the product end to end, side by side with its references.

    python -m bench                      # every workload at the default sizes
    python -m bench --only provision     # one workload (repeatable: --only provision --only noop)
    python -m bench --tenants 200 --repeat 5
    python -m bench --full               # 10,000 clients where a workload takes a size

Each workload runs ours and its references in the same run, alternating, `--repeat` times, and reports
the median, the spread ((max - min) / median) and the ratio ours / reference. Writes
bench/results/<date>.json, bench/results/<date>.md (copied into docs/performance.md) and PNG charts.
The bench's databases carry `bench` in their names and are created and dropped by the bench; Redis db 9.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from bench import w_noop, w_provision, w_rollout, w_throughput
from bench.common import BenchError
from bench.report import write_outputs

WORKLOADS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "provision": w_provision.run,
    "throughput": w_throughput.run,
    "rollout": w_rollout.run,
    "noop": w_noop.run,
}


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=sorted(WORKLOADS), help="run only this workload")
    parser.add_argument("--tenants", type=int, default=200, help="N clients for rollout and no-op (default 200)")
    parser.add_argument("--clients", type=int, default=20, help="N clients per API burst (default 20)")
    parser.add_argument("--repeat", type=int, default=3, help="alternating runs per figure (default 3)")
    parser.add_argument("--full", action="store_true", help="10,000 clients")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args(argv)
    if args.full:
        args.tenants = 10_000
    return args


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through the workloads' finally blocks: their databases are dropped


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGTERM, _terminated)
    args = parse(argv)
    load_start = os.getloadavg()
    results: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"node": platform.node(), "cores": os.cpu_count(), "python": platform.python_version()},
        "command": "python -m bench " + " ".join(argv),
        "load_average_start": load_start,
        "workloads": {},
    }
    failed = []
    for name in args.only or list(WORKLOADS):
        print(f"== {name}", flush=True)
        started = time.perf_counter()
        try:
            results["workloads"][name] = WORKLOADS[name](args)
        except (BenchError, subprocess.SubprocessError, psycopg.Error, OSError) as exc:
            print(f"== {name}: FAILED: {exc}", file=sys.stderr, flush=True)
            results["workloads"][name] = {"error": str(exc)}
            failed.append(name)
        results["workloads"][name]["elapsed_s"] = time.perf_counter() - started
        print(f"== {name}: {time.perf_counter() - started:.1f} s", flush=True)
    results["load_average_end"] = os.getloadavg()
    paths = write_outputs(results, args.out)
    print(json.dumps({k: str(v) for k, v in paths.items()}))
    print(paths["md"].read_text())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
