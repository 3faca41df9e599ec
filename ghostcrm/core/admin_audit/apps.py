from django.apps import AppConfig


class AdminAuditConfig(AppConfig):
    """Listed last in INSTALLED_APPS: its ``ready`` runs after the admin has loaded every app's admin module
    (and after every other app's ``ready``), then makes third-party admins audited like ours."""

    name = "ghostcrm.core.admin_audit"
    label = "core_admin_audit"
    verbose_name = "Admin audit"

    def ready(self) -> None:
        from django.contrib import admin

        from ghostcrm.core.admin_base import audit_registered_admins

        audit_registered_admins(admin.site)
