from django.apps import AppConfig


class EngineConfig(AppConfig):
    name = "tenants.engine"
    label = "tenant_sql"
    verbose_name = "Tenant schema templates"
