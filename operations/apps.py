from __future__ import annotations

from django.apps import AppConfig
from django.utils.module_loading import import_string


class OperationsConfig(AppConfig):
    """Backups, restores, drills, retention, health, metrics and logs: what an on-call engineer needs."""

    name = "operations"
    verbose_name = "Operations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The settings registry reads models, importable only once the app registry is ready.
        import_string("operations.settings_specs.register_all")()
        # Resolved by name once the apps are loaded (the metrics module reads models).
        import_string("axes.signals.user_locked_out").connect(
            import_string("operations.services.metrics.lockout_observed"), dispatch_uid="operations.lockout_metric"
        )
