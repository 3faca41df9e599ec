from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "ghostcrm.core"
    label = "core"
    verbose_name = "System"

    def ready(self) -> None:
        from ghostcrm.core import checks  # noqa: F401  (registers the system checks)
