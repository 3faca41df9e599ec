"""RQ jobs of the audit log (scheduled in ``settings.PERIODIC_JOBS``)."""

from __future__ import annotations

from ghostcrm.audit.sealing import SEAL_BATCH, audit_seal

MAX_BATCHES = 20  # a run stays short under any load; the next run picks up the rest


def audit_seal_job() -> int:
    """Seal the events appended since the last run, in batches; returns how many were sealed."""
    total = 0
    for _ in range(MAX_BATCHES):
        sealed = audit_seal().sealed
        total += sealed
        if sealed < SEAL_BATCH:
            break
    return total
