from django.apps import AppConfig

THIRD_PARTY_APP_NAMES = {
    "django_rq": "Job queues",
    "otp_totp": "Authenticator apps",
    "otp_static": "Backup codes",
    "axes": "Sign-in lockout",
}


class AdminAuditConfig(AppConfig):
    """Listed last in INSTALLED_APPS: its ``ready`` runs after the admin has loaded every app's admin module
    (and after every other app's ``ready``), then makes third-party admins audited like ours."""

    name = "ghostcrm.core.admin_audit"
    label = "core_admin_audit"
    verbose_name = "Admin audit"

    def ready(self) -> None:
        from django.apps import apps
        from django.contrib import admin

        from ghostcrm.core.admin_base import audit_registered_admins

        audit_registered_admins(admin.site)
        # These apps name no verbose_name, so the admin index showed their labels ("DJANGO_RQ", "OTP_TOTP").
        for label, verbose_name in THIRD_PARTY_APP_NAMES.items():
            if label in apps.app_configs:
                apps.app_configs[label].verbose_name = verbose_name
