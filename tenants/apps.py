from __future__ import annotations

from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Provisioning"

    def ready(self) -> None:
        from ghostcrm.core.system_settings import SettingSpec, register

        register(
            SettingSpec(
                key="provisioning.stuck_after_minutes",
                type=int,
                default=15,
                min_value=0,
                max_value=24 * 60,
                help_text="The reconciler re-enqueues organisations pending, provisioning or deprovisioning "
                "with no progress for this many minutes.",
            ),
            SettingSpec(
                key="provisioning.retention_days",
                type=int,
                default=30,
                min_value=0,
                max_value=3650,
                help_text="Days a deleted organisation's schema is kept before the purge drops it (its export stays).",
            ),
            SettingSpec(
                key="provisioning.job_timeout_seconds",
                type=int,
                default=900,
                min_value=30,
                max_value=6 * 3600,
                help_text="RQ timeout of one provisioning or deprovisioning job.",
            ),
        )
        from ghostcrm.accounts.signals import invitation_accepted
        from tenants.provisioning.receivers import invitation_accepted_receiver

        invitation_accepted.connect(invitation_accepted_receiver, dispatch_uid="tenants.invitation_accepted")
