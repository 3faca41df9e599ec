from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "ghostcrm.core"
    label = "core"
    verbose_name = "System"
