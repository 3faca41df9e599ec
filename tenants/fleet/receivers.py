"""The fleet's reactions to signals of lower layers."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS

from tenants.fleet.models import PRIMARY_SERVER_NAME
from tenants.fleet.services import primary_register


def register_primary_server(*, aliases: list[str], **kwargs: Any) -> str:
    """After ``migrate``: the server of TENANT_DATABASE_URL is the registry's ``primary``."""
    if not {DEFAULT_DB_ALIAS, settings.TENANT_DB_ALIAS} <= set(aliases):
        return ""
    server, changed = primary_register(url=settings.TENANT_DATABASE_URL)
    if not changed:
        return ""
    return f"Tenant database server {PRIMARY_SERVER_NAME} registered: {server.url}."
