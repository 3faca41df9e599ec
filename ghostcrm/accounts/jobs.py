"""RQ jobs of the accounts app, run by the worker's scheduler (thin callers of one service each)."""

from __future__ import annotations

import logging

from ghostcrm.accounts.services.invitations import invitations_expire
from ghostcrm.accounts.services.sessions import user_sessions_purge

log = logging.getLogger(__name__)


def invitations_expire_job() -> int:
    """Periodic: mark pending invitations past their expiry as expired."""
    count = invitations_expire()
    log.info("invitations_expire: %d invitation(s) expired", count)
    return count


def user_sessions_purge_job() -> int:
    """Periodic: delete session records older than the absolute session timeout."""
    count = user_sessions_purge()
    log.info("user_sessions_purge: %d session record(s) deleted", count)
    return count
