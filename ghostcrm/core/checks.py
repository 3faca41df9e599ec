"""System checks run by every ``manage.py`` command: configured encryption keys must be usable."""

from __future__ import annotations

from typing import Any

from django.core.checks import Error, register

from ghostcrm.core.fields import EncryptionKeyError, multi_fernet


@register()
def encryption_keys_check(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    try:
        multi_fernet()
    except EncryptionKeyError as exc:
        return [Error(exc.message, id="core.E001")]
    return []
