from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "ghostcrm.integrations"
    label = "integrations"
    verbose_name = "Integrations"
