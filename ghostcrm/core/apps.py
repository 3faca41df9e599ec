from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class CoreConfig(AppConfig):
    name = "ghostcrm.core"
    label = "core"
    verbose_name = "System"

    def ready(self) -> None:
        from ghostcrm.core import checks  # noqa: F401  (registers the system checks)


class AuditedAdminConfig(admin_apps.AdminConfig):
    """The admin app: after every app's admin module is loaded, third-party admins are made audited too."""

    default = False  # CoreConfig stays this module's default app config

    def ready(self) -> None:
        super().ready()
        from django.contrib import admin

        from ghostcrm.core.admin_base import audit_registered_admins

        audit_registered_admins(admin.site)
