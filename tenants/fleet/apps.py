from django.apps import AppConfig
from django.utils.module_loading import import_string

from ghostcrm.core.signals import databases_migrated


class FleetConfig(AppConfig):
    name = "tenants.fleet"
    label = "fleet"
    verbose_name = "Tenant database servers"

    def ready(self) -> None:
        # The receiver's module imports models, which may load only once the app registry is ready.
        receiver = import_string("tenants.fleet.receivers.register_primary_server")
        databases_migrated.connect(receiver, dispatch_uid="fleet.register_primary_server")
