"""Helpers shared by the tenants commands."""

from __future__ import annotations

import getpass

from ghostcrm.audit.services import Actor


def cli_actor(command: str) -> Actor:
    """Commands act as the system, labelled with the command and the operating-system user running it."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return Actor.system(f"cli:{command}:{user}")
