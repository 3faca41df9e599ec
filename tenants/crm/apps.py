from django.apps import AppConfig


class CrmConfig(AppConfig):
    """Unmanaged, read-only mirrors of tenant template tables (django-tenants' TENANT_APPS; no migrations)."""

    name = "tenants.crm"
    label = "crm"
    verbose_name = "Tenant CRM (read-only mirrors)"
