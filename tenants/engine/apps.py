from django.apps import AppConfig


class EngineConfig(AppConfig):
    name = "tenants.engine"
    label = "tenant_sql"
    verbose_name = "Tenant schema templates"

    def ready(self) -> None:
        from ghostcrm.core.system_settings import SettingSpec, register

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
