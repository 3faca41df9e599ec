"""Command-line entry: configuration and connection problems become one sentence, not a traceback."""

from __future__ import annotations

import sys

from django.core.exceptions import ImproperlyConfigured
from django.db import Error as DatabaseError


def run_command_line(argv: list[str]) -> None:
    from django.core.management import execute_from_command_line

    try:
        from django.conf import settings

        settings.INSTALLED_APPS  # noqa: B018 - loading settings here surfaces configuration errors early
        execute_from_command_line(argv)
    except ImproperlyConfigured as exc:
        sys.stderr.write(f"ghostcrm: configuration error: {exc}\n")
        sys.exit(2)
    except DatabaseError as exc:
        from ghostcrm.core.dbcheck import describe_unreachable

        message = describe_unreachable()
        if message is None:
            raise
        sys.stderr.write(f"ghostcrm: {message} ({type(exc).__name__})\n")
        sys.exit(2)
