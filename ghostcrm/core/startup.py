"""Command-line entry: configuration and connection problems become one sentence, not a traceback."""

from __future__ import annotations

import sys

from django.core.exceptions import ImproperlyConfigured
from django.core.serializers.base import DeserializationError
from django.db import Error as DatabaseError


def run_command_line(argv: list[str]) -> None:
    from django.core.management import execute_from_command_line

    try:
        from django.conf import settings

        settings.INSTALLED_APPS  # noqa: B018 - loading settings here surfaces configuration errors early
        execute_from_command_line(argv)
    except ImproperlyConfigured as exc:
        sys.stderr.write(f"ghostcrm: configuration error: {_odbc_problem(exc) or exc}\n")
        sys.exit(2)
    except DeserializationError as exc:
        # loaddata: "Problem installing fixture '<file>': <why>" (e.g. a secret exported under another key).
        sys.stderr.write(f"ghostcrm: {exc}\n")
        sys.exit(1)
    except DatabaseError as exc:
        from ghostcrm.core.dbcheck import describe_unreachable

        if (odbc := _odbc_problem(exc)) is not None:  # SQL Server: driver or unixODBC not installed
            sys.stderr.write(f"ghostcrm: {odbc}\n")
            sys.exit(2)

        message = describe_unreachable()
        if message is None:
            raise
        sys.stderr.write(f"ghostcrm: {message} ({type(exc).__name__})\n")
        sys.exit(2)


def _odbc_problem(exc: BaseException) -> str | None:
    try:
        from ghostcrm.mssql.drivers import describe_driver_problem

        return describe_driver_problem(exc)
    except ImproperlyConfigured:  # settings themselves did not load
        return None
