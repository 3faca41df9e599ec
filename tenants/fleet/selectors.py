"""Reads of the server registry, and each server's live figures (probed in parallel, one connection each)."""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from typing import Any

from django.db.models import QuerySet

from ghostcrm.core.errors import ApplicationError, NotFound
from tenants.fleet.connection import ServerAddress, parse_server_url, server_probe
from tenants.fleet.models import PRIMARY_SERVER_NAME, TenantServer
from tenants.models import Organization

# Probing more servers at once than this only queues them; each probe holds one connection for milliseconds.
MAX_PARALLEL_PROBES = 8


def server_list() -> QuerySet[TenantServer]:
    return TenantServer.objects.order_by("name")


def server_by_name(*, name: str) -> TenantServer:
    server = TenantServer.objects.filter(name=name).first()
    if server is None:
        raise NotFound(f"No tenant database server is named {name}.")
    return server


def server_client_counts() -> dict[str, int]:
    """Clients per server name. Every organisation lives on the primary server today (its schema on the server
    of TENANT_DATABASE_URL, recorded in ``Organization.schema_name``); a per-client server column arrives with
    placement. A purged organisation no longer has a schema, so it is not counted."""
    on_primary = Organization.objects.exclude(status=Organization.Status.PURGED).count()
    return {
        server.name: on_primary if server.name == PRIMARY_SERVER_NAME else 0
        for server in TenantServer.objects.only("name")
    }


@dataclass(frozen=True)
class ServerStatus:
    name: str
    url: str
    state: str
    capacity: int
    clients: int
    reachable: bool
    error: str = ""
    version: str = ""
    version_num: int | None = None
    wal_level: str = ""
    size_bytes: int | None = None
    connections_in_use: int | None = None
    max_connections: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _status(server: TenantServer, address: ServerAddress | None, clients: int, url_error: str) -> ServerStatus:
    status = ServerStatus(
        name=server.name,
        url=server.url,
        state=server.state,
        capacity=server.capacity,
        clients=clients,
        reachable=False,
        error=url_error,
    )
    if address is None:
        return status
    try:
        probe = server_probe(address)
    except ApplicationError as exc:
        return replace(status, error=exc.message)
    return replace(
        status,
        reachable=True,
        version=probe.version,
        version_num=probe.version_num,
        wal_level=probe.wal_level,
        size_bytes=probe.size_bytes,
        connections_in_use=probe.connections_in_use,
        max_connections=probe.max_connections,
    )


def server_statuses(servers: Iterable[TenantServer] | None = None) -> list[ServerStatus]:
    """Each server's figures, servers probed in parallel with a short timeout; one that does not answer is
    reported as unreachable and the others carry on. In the order of ``servers`` (by name by default)."""
    servers = list(server_list() if servers is None else servers)
    counts = server_client_counts()
    jobs: list[tuple[TenantServer, ServerAddress | None, str]] = []
    # Passwords are decrypted here, in the calling thread; the probe threads touch no Django database.
    for server in servers:
        try:
            jobs.append((server, parse_server_url(server.url, password=server.password), ""))
        except ApplicationError as exc:
            jobs.append((server, None, exc.message))
    if not jobs:
        return []
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL_PROBES, len(jobs))) as pool:
        return list(pool.map(lambda job: _status(job[0], job[1], counts.get(job[0].name, 0), job[2]), jobs))
