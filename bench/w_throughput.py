"""Workload 2: N clients requested at once through the REST API (service key), provisioned by 1 and then
2 workers. Reports clients per minute and the time from the first request to the last active client, as
recorded (the latest activated_at minus the earliest created_at, from `tenants list --json`).

The API runs under `manage.py runserver --noreload` on a bench port (8181-8189); the key's rate limit is
raised through API_KEY_RATE_LIMIT for the burst. Workers: `run_worker provisioning default --no-cron`,
started and registered before the burst.
"""

from __future__ import annotations

import json
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import redis

from bench.common import REDIS_URL, BenchError, Stack, stack, summary

PORT = 8181


def _post(url: str, key: str, i: int, tag: str) -> int:
    body = json.dumps({"client_name": f"Bench {tag} {i}", "admin_email": f"bench{i}@example.com"}).encode()
    request = urllib.request.Request(  # noqa: S310  (a local URL the bench builds)
        url, data=body, method="POST", headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310
        return int(response.status)


def _wait_server(url: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=5)  # noqa: S310
        except urllib.error.HTTPError:
            return  # it answers (401 without a key)
        except OSError:
            time.sleep(0.5)
            continue
        return
    raise BenchError("runserver", "did not answer in time")


def _wait_workers(count: int, deadline: float) -> None:
    """Until `count` RQ workers have registered in the bench's Redis db (they are started fresh per burst)."""
    client = redis.Redis.from_url(REDIS_URL)
    while client.scard("rq:workers") < count:
        if time.monotonic() > deadline:
            raise BenchError("run_worker", "the workers did not register in time")
        time.sleep(0.3)


def burst(s: Stack, key: str, n: int, workers: int, tag: str, timeout: float) -> dict[str, float]:
    url = f"http://127.0.0.1:{PORT}/api/v1/organizations/"
    procs = [s.popen("run_worker", "provisioning", "default", "--no-cron") for _ in range(workers)]
    try:
        _wait_workers(workers, time.monotonic() + 120)
        with ThreadPoolExecutor(max_workers=8) as pool:
            codes = list(pool.map(lambda i: _post(url, key, i, tag), range(n)))
        if any(c not in (201, 202) for c in codes):
            detail = f"status codes {sorted(set(codes))}"
            raise BenchError("api", detail)
        print(f"throughput: {n} requests accepted ({tag}, {workers} worker(s))", flush=True)
        deadline = time.monotonic() + timeout
        while True:
            orgs = [
                o for o in s.manage_json("tenants", "list", "--json") if o["client_name"].startswith(f"Bench {tag} ")
            ]
            done = [o for o in orgs if o["status"] in ("active", "failed")]
            if len(done) == n:
                break
            if time.monotonic() > deadline:
                detail = f"{len(done)}/{n} finished after {timeout} s"
                raise BenchError(tag, detail)
            time.sleep(2)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=60)
    failed = [o for o in orgs if o["status"] != "active"]
    if failed:
        detail = f"{len(failed)} failed: {failed[0].get('last_error')}"
        raise BenchError(tag, detail)
    first = min(datetime.fromisoformat(o["created_at"]) for o in orgs)
    last = max(datetime.fromisoformat(o["activated_at"]) for o in orgs)
    to_last = (last - first).total_seconds()
    return {"to_last_active_s": to_last, "clients_per_min": n / to_last * 60}


def run(args: Any) -> dict[str, Any]:
    n = args.clients
    results: dict[int, list[dict[str, float]]] = {1: [], 2: []}
    with stack() as s:
        out = s.manage("create_service_key", "--name", "bench", "--scopes", "organizations:write,organizations:read")
        key = out.stdout.strip().splitlines()[-1]
        env_server = s.env() | {"API_KEY_RATE_LIMIT": "100000/min"}
        server = s.popen_env(env_server, "runserver", f"127.0.0.1:{PORT}", "--noreload")
        try:
            _wait_server(f"http://127.0.0.1:{PORT}/api/v1/organizations/", time.monotonic() + 120)
            print("throughput: API up", flush=True)
            for r in range(args.repeat):
                for workers in (1, 2):
                    results[workers].append(burst(s, key, n, workers, f"r{r}w{workers}", timeout=60 + n * 10))
        finally:
            server.terminate()
            server.wait(timeout=30)
    one = summary([x["clients_per_min"] for x in results[1]])
    two = summary([x["clients_per_min"] for x in results[2]])
    return {
        "rows": [
            {
                "what": f"{n} clients via the API, 1 worker: time to last active",
                "ours": summary([x["to_last_active_s"] for x in results[1]]),
                "ref": None,
                "ref_name": "",
                "ratio": None,
                "target": "",
            },
            {
                "what": f"{n} clients via the API, 2 workers: time to last active",
                "ours": summary([x["to_last_active_s"] for x in results[2]]),
                "ref": None,
                "ref_name": "",
                "ratio": None,
                "target": "",
            },
            {
                "what": f"clients/min, 2 workers vs 1 ({two['median']:.1f} vs {one['median']:.1f})",
                "ours": None,
                "ref": None,
                "ref_name": "",
                "ratio": two["median"] / one["median"],
                "target": ">= 1.6x",
            },
        ],
        "clients_per_min": {"1": one, "2": two},
    }
