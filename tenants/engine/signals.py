"""Receivers the engine connects when Django is ready (imported by ``EngineConfig.ready``)."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.conf import settings

from tenants.engine.schemas import migrator_setup


def migrator_after_migrate(sender: AppConfig, using: str = "", **kwargs: Any) -> None:
    """``migrate`` creates or repairs the migrator login once the ledger table exists (idempotent)."""
    if using != settings.TENANT_DB_ALIAS:
        return
    migrator_setup(password=getattr(settings, "TENANT_MIGRATOR_PASSWORD", "") or None)
