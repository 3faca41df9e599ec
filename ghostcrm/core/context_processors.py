from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest

BANNER_COLOURS = {"development": "#2e7d32", "staging": "#ef6c00", "production": "#c62828"}


def environment(request: HttpRequest) -> dict[str, Any]:
    """The environment banner shown on every admin page, so production is never mistaken for staging."""
    name = settings.GHOSTCRM_ENV
    return {"ghostcrm_env": name, "ghostcrm_env_colour": BANNER_COLOURS[name]}
