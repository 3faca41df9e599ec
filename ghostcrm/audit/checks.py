"""System check run by every ``manage.py`` command: the audit keys must be usable before anything is sealed."""

from __future__ import annotations

from typing import Any

from django.core.checks import Error, register
from django.core.exceptions import ImproperlyConfigured

from ghostcrm.audit.keys import configured_keys


@register()
def audit_keys_check(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    try:
        configured_keys()
    except ImproperlyConfigured as exc:
        return [Error(str(exc), id="audit.E001")]
    return []
