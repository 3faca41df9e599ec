"""One worker at a time per organisation: a PostgreSQL advisory lock in the tenant database.

The lock is held by the worker's database session, so it vanishes with a killed worker.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
import zlib
from collections.abc import Iterator

from django.db import DatabaseError

from tenants.db import tenant_connection

logger = logging.getLogger(__name__)
ADVISORY_NAMESPACE = 0x6763  # "gc": keeps our organisation locks apart from the engine's schema locks


class OrganizationBusy(Exception):
    """Another worker holds this organisation's lock."""


def lock_key(organization_id: uuid.UUID | str) -> int:
    """pg_try_advisory_lock(int4, int4)'s second key: a CRC of the id as a signed 32-bit number."""
    value = zlib.crc32(str(organization_id).encode())
    return value - (1 << 32) if value >= (1 << 31) else value


def lock_acquire(organization_id: uuid.UUID | str) -> None:
    """Take this organisation's advisory lock on the tenant database session, or raise ``OrganizationBusy``."""
    with tenant_connection().cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [ADVISORY_NAMESPACE, lock_key(organization_id)])
        if not cursor.fetchone()[0]:
            raise OrganizationBusy(str(organization_id))


def lock_release(organization_id: uuid.UUID | str) -> None:
    try:
        with tenant_connection().cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [ADVISORY_NAMESPACE, lock_key(organization_id)])
    except DatabaseError:  # the session is gone, and the lock with it
        logger.warning("could not release the advisory lock of organisation %s", organization_id)


@contextlib.contextmanager
def organization_lock(organization_id: uuid.UUID | str) -> Iterator[None]:
    """Hold this organisation's advisory lock for the block, or raise ``OrganizationBusy``."""
    lock_acquire(organization_id)
    try:
        yield
    finally:
        lock_release(organization_id)
