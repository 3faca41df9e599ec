from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "ghostcrm.accounts"
    label = "accounts"
    verbose_name = "Super-admin accounts"
