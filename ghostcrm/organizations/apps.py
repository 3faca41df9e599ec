from django.apps import AppConfig


class OrganizationsConfig(AppConfig):
    """The client organisation: the one model every layer may depend on (tenants, billing, accounts, ...).

    Only the row lives here. Its lifecycle (requesting, provisioning, suspending, ...) is ``tenants``' work.
    """

    name = "ghostcrm.organizations"
    label = "organizations"
    verbose_name = "Client organisations"
