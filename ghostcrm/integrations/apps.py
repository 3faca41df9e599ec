from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "ghostcrm.integrations"
    label = "integrations"
    verbose_name = "Integrations"

    def ready(self) -> None:
        from ghostcrm.core.system_settings import SettingSpec, register
        from ghostcrm.integrations.providers import PROVIDERS, validate_provider_codes

        register(
            SettingSpec(
                key="integrations.enabled_providers",
                type=list,
                default=list(PROVIDERS),
                help_text="Providers organisations may enable (a JSON list of provider codes).",
                validators=(validate_provider_codes,),
            )
        )
