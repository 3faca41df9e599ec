from importlib import import_module

from django.apps import AppConfig
from django.db.models.signals import post_migrate

from ghostcrm.core.system_settings import SettingSpec, register


class EngineConfig(AppConfig):
    name = "tenants.engine"
    label = "tenant_sql"
    verbose_name = "Tenant schema templates"

    def ready(self) -> None:
        # Imported here, by name: the receivers use models, which are not importable before ready().
        signals = import_module(f"{self.name}.signals")
        post_migrate.connect(signals.migrator_after_migrate, sender=self, dispatch_uid="tenant_sql.migrator")
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
