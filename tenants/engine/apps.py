from importlib import import_module

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class EngineConfig(AppConfig):
    name = "tenants.engine"
    label = "tenant_sql"
    verbose_name = "Tenant schema templates"

    def ready(self) -> None:
        # Imported here, by name: the receivers use models, which are not importable before ready().
        signals = import_module(f"{self.name}.signals")
        # The settings registry reads models too: imported once the app registry is ready.
        from ghostcrm.core.system_settings import SettingSpec, register  # noqa: PLC0415, RUF100

        post_migrate.connect(signals.migrator_after_migrate, sender=self, dispatch_uid="tenant_sql.migrator")
        register(
            SettingSpec(
                key="tenant_sql.lock_timeout_ms",
                type=int,
                default=5000,
                min_value=1,
                max_value=3_600_000,
                help_text="Each template file waits at most this long for a lock (a file may say otherwise with "
                "'-- tenant_sql: lock_timeout=2s'); a timeout is retried later, never a failure.",
            )
        )
        register(
            SettingSpec(
                key="tenant_sql.statement_timeout_ms",
                type=int,
                default=600_000,
                min_value=1,
                max_value=86_400_000,
                help_text="Each statement of a template file runs at most this long "
                "('-- tenant_sql: statement_timeout=30min' in a file overrides it).",
            )
        )
        register(
            SettingSpec(
                key="tenant_sql.recycle_every",
                type=int,
                default=300,
                min_value=1,
                max_value=100_000,
                help_text="A rollout replaces each worker's database connection after this many schemas "
                "(a PostgreSQL backend's relation cache grows with every table it touches).",
            )
        )
