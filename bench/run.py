"""Run the benchmarks: every ``bench/<area>_bench.py``, one after the other, each in its own process.

    python bench/run.py            # all of them (what `make bench` runs)
    python bench/run.py engine     # only bench/engine_bench.py

Each script prints its figures and writes its report under bench/reports/. Exit status 1 when any failed.
Benchmarks are not tests: they measure, and never decide whether the build passes.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    wanted = set(argv)
    scripts = sorted(p for p in BENCH_DIR.glob("*_bench.py") if not wanted or p.stem.removesuffix("_bench") in wanted)
    if not scripts:
        print(f"bench: nothing matches {', '.join(sorted(wanted)) or 'bench/*_bench.py'}", file=sys.stderr)
        return 2
    failed = []
    for script in scripts:
        print(f"== {script.name}", flush=True)
        started = time.perf_counter()
        code = subprocess.call([sys.executable, str(script)], cwd=BENCH_DIR.parent)  # noqa: S603
        print(f"== {script.name}: exit {code} after {time.perf_counter() - started:.1f} s", flush=True)
        if code != 0:
            failed.append(script.name)
    if failed:
        print(f"bench: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
