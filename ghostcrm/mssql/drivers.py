"""One sentence for the ODBC problems an operator meets first: a driver or unixODBC that is not installed."""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS

from ghostcrm.dburl import MSSQL_DEFAULT_DRIVER, is_freetds

# What unixODBC (and Windows' driver manager) say when the DRIVER= or DSN= named cannot be loaded.
_DRIVER_MISSING = re.compile(
    r"can't open lib|data source name not found|driver not found|specified driver could not be loaded|\bIM002\b",
    re.IGNORECASE,
)
_LIBODBC_MISSING = re.compile(r"libodbc\.so|Error loading pyodbc module", re.IGNORECASE)
README_SECTION = "README.md, section 'SQL Server (main database)'"


def install_hint(driver: str) -> str:
    """The Debian/Ubuntu command that installs ``driver``."""
    if is_freetds(driver):
        return "sudo apt-get install -y tdsodbc"
    match = re.search(r"ODBC Driver (\d+) for SQL Server", driver)
    if match:
        return (
            f"sudo ACCEPT_EULA=Y apt-get install -y msodbcsql{match.group(1)} after adding Microsoft's package "
            f"repository ({README_SECTION})"
        )
    return f"your driver vendor's package, registered in /etc/odbcinst.ini under the name {driver!r}"


def installed_drivers() -> list[str]:
    try:
        import pyodbc
    except ImportError:
        return []
    return sorted(pyodbc.drivers())


def describe_driver_problem(exc: BaseException, database: dict[str, Any] | None = None) -> str | None:
    """A sentence naming the missing ODBC piece and its install command, or None for other errors.

    ``database`` is the main database's settings entry (default: ``settings.DATABASES["default"]``).
    """
    database = database if database is not None else settings.DATABASES.get(DEFAULT_DB_ALIAS, {})
    if database.get("ENGINE") != "mssql":
        return None
    texts = [str(exc)]
    cause = exc.__cause__ or exc.__context__
    if cause is not None:
        texts.append(str(cause))
    text = " ".join(texts)
    if _LIBODBC_MISSING.search(text):
        return (
            "the SQL Server driver cannot load unixODBC (libodbc.so.2) for MAIN_DATABASE_URL; install it with "
            "sudo apt-get install -y unixodbc, then the ODBC driver itself."
        )
    if not _DRIVER_MISSING.search(text):
        return None
    driver = str((database.get("OPTIONS") or {}).get("driver") or MSSQL_DEFAULT_DRIVER)
    installed = installed_drivers()
    found = f"installed ODBC drivers: {', '.join(installed)}" if installed else "no ODBC driver is installed"
    return (
        f"the ODBC driver {driver!r} named by MAIN_DATABASE_URL is not installed ({found}); install it with "
        f"{install_hint(driver)}, or name an installed driver with ?driver=… in MAIN_DATABASE_URL."
    )
