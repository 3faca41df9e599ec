from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "ghostcrm.accounts"
    label = "accounts"
    verbose_name = "Super-admin accounts"
    default = True

    def ready(self) -> None:
        # Models, and the receivers that use them, can be imported only once the app registry is ready;
        # AppConfig.ready() is Django's documented place for this one import.
        from ghostcrm.accounts import wiring  # noqa: PLC0415, RUF100

        wiring.connect()
