"""Refused API keys: a budget per client address, checked before the key is looked up, and audit events
aggregated per key prefix, address and minute.

A flood of bad keys (300 requests with invalid keys used to write 300 audit rows) costs one Redis round trip per
request once the address has spent its budget (``API_AUTH_FAILURE_LIMIT`` refusals a minute): the answer is a 429
before any database access. Refusals are counted in Redis and written to the audit log once the minute is over,
one event per (key prefix, address) with the count by reason (``api_refusals_flush``, called by the next refusal
of a later minute and every minute by the worker's scheduler).

Redis unreachable: the budget is counted per process, and the first refusal of a minute for each (key prefix,
address) in a process is audited at once, without a count (there is nowhere shared to keep one).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
import uuid
from collections import defaultdict
from typing import cast

import django_rq
from django.conf import settings
from django.core.cache import cache
from django.core.cache.backends.base import BaseCache
from django.core.cache.backends.locmem import LocMemCache
from django.http import HttpRequest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ghostcrm.audit.models import AuditEvent
from ghostcrm.audit.services import Actor, audit_record
from ghostcrm.core.http import client_ip

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError)
# When Redis is unreachable the limits are counted per process instead (each web worker allows the full
# budget): the API keeps answering rather than failing every request (docs/api.md, "Redis down").
PROCESS_CACHE = LocMemCache("ghostcrm-api-process-limits", {"MAX_ENTRIES": 10_000})
PREFIX_RE = re.compile(r"gcrm_(?P<prefix>[0-9a-f]{8})_")
PENDING_WINDOWS = "ghostcrm:api-refusals:windows"
THROTTLED = "throttled"


def _now() -> float:
    """The clock (a hook for tests)."""
    return time.time()


def _window(now: float) -> int:
    return int(now // WINDOW_SECONDS)


def _hash_name(window: int) -> str:
    return f"ghostcrm:api-refusals:{window}"


def failure_limit() -> int:
    return int(getattr(settings, "API_AUTH_FAILURE_LIMIT", 20))


def key_prefix(token: str) -> str:
    """The (not secret) prefix of a presented key, "" when it is not shaped like one."""
    match = PREFIX_RE.match(token or "")
    return match["prefix"] if match else ""


def request_address(request: HttpRequest) -> str:
    return client_ip(request) or "unknown"


def _incr(store: BaseCache, key: str) -> int:
    store.add(key, 0, timeout=2 * WINDOW_SECONDS)
    return int(store.incr(key))


def _count(key: str) -> int:
    try:
        return int(cache.get(key, 0))
    except REDIS_DOWN:
        return int(PROCESS_CACHE.get(key, 0))


def _budget_key(address: str, window: int) -> str:
    return f"api-refused-address:{address}:{window}"


def address_retry_after(request: HttpRequest, *, now: float | None = None) -> int | None:
    """Seconds to wait when this address has spent its budget of refused keys this minute, else None."""
    now = _now() if now is None else now
    window = _window(now)
    if _count(_budget_key(request_address(request), window)) < failure_limit():
        return None
    return max(int((window + 1) * WINDOW_SECONDS - now), 1)


def refusal_note(*, request: HttpRequest, token: str, code: str, now: float | None = None) -> None:
    """Count one refused request (a bad key, or one throttled for its address) toward the address's budget and
    the minute's audit event."""
    now = _now() if now is None else now
    window = _window(now)
    address = request_address(request)
    prefix = key_prefix(token)
    if code != THROTTLED:
        try:
            _incr(cache, _budget_key(address, window))
        except REDIS_DOWN:
            _incr(PROCESS_CACHE, _budget_key(address, window))
    try:
        connection = django_rq.get_connection("default")
        pipe = connection.pipeline()
        pipe.hincrby(_hash_name(window), f"{prefix}|{address}|{code}", 1)
        pipe.expire(_hash_name(window), 24 * 3600)
        pipe.sadd(PENDING_WINDOWS, window)
        pipe.execute()
        if cache.add(f"api-refusals-flush:{window}", 1, timeout=2 * WINDOW_SECONDS):
            api_refusals_flush(now=now)  # the first refusal of a minute writes the minutes before it
    except REDIS_DOWN:
        if PROCESS_CACHE.add(f"api-refusal-audited:{window}:{prefix}:{address}", 1, timeout=2 * WINDOW_SECONDS):
            _audit(window, prefix, address, {code: 0})


def api_refusals_flush(*, now: float | None = None) -> int:
    """Write the audit events of every finished minute; returns how many were written. Safe to run concurrently:
    each minute is claimed by renaming its hash, which only one caller can do."""
    now = _now() if now is None else now
    connection = django_rq.get_connection("default")
    written = 0
    for raw in cast("set[bytes]", connection.smembers(PENDING_WINDOWS)):
        window = int(raw)
        if window >= _window(now):
            continue
        claimed = f"{_hash_name(window)}:flushing:{uuid.uuid4().hex}"
        try:
            connection.rename(_hash_name(window), claimed)
        except ResponseError:  # already claimed by another caller, or expired
            connection.srem(PENDING_WINDOWS, raw)
            continue
        groups: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
        fields = cast("dict[bytes, bytes]", connection.hgetall(claimed))
        for field, count in fields.items():
            prefix, address, code = field.decode().split("|", 2)
            groups[(prefix, address)][code] = int(count)
        for (prefix, address), counts in sorted(groups.items()):
            _audit(window, prefix, address, counts)
            written += 1
        connection.delete(claimed)
        connection.srem(PENDING_WINDOWS, raw)
    return written


def api_refusals_flush_job() -> int:
    """Periodic (``PERIODIC_JOBS``): the last minute's refusals reach the audit log even when no request follows."""
    return api_refusals_flush()


def _audit(window: int, prefix: str, address: str, counts: dict[str, int]) -> None:
    start = dt.datetime.fromtimestamp(window * WINDOW_SECONDS, tz=dt.UTC)
    total = sum(counts.values())
    reasons = ", ".join(f"{code}: {count}" for code, count in sorted(counts.items()) if count) or ", ".join(counts)
    who = f"key prefix gcrm_{prefix}_…" if prefix else "a malformed or missing key"
    message = (
        f"{total} API request(s) refused from {address} with {who} in the minute from {start:%H:%M} UTC ({reasons})"
        if total
        else f"API requests refused from {address} with {who} from {start:%H:%M} UTC; Redis was unreachable, so "
        "later refusals of this minute are not counted"
    )
    audit_record(
        action="api.request",
        actor=Actor.api_key("", f"gcrm_{prefix}_…" if prefix else "unknown key"),
        target_type="tenants.servicekey",
        target_id=prefix,
        target_repr=f"gcrm_{prefix}_…" if prefix else "",
        outcome=AuditEvent.Outcome.DENIED,
        message=message,
        ip_address=None if address == "unknown" else address,
        after={"count": total, "by_reason": counts, "key_prefix": prefix, "window_start": start.isoformat()},
    )
