from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "ghostcrm.audit"
    label = "audit"
    verbose_name = "Audit log"

    def ready(self) -> None:
        from ghostcrm.audit import checks  # noqa: F401  (registers the system check; models are ready here)
