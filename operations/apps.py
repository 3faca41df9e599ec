from __future__ import annotations

from django.apps import AppConfig


class OperationsConfig(AppConfig):
    """Backups, restores, drills, retention, health, metrics and logs: what an on-call engineer needs."""

    name = "operations"
    verbose_name = "Operations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from operations import settings_specs

        settings_specs.register_all()
