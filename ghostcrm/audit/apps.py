from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "ghostcrm.audit"
    label = "audit"
    verbose_name = "Audit log"
