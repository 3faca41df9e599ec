"""Database URLs from the environment, turned into Django ``DATABASES`` entries (parsed by django-environ).

Every failure is an ``ImproperlyConfigured`` whose message is one sentence naming the variable and
what to do, because these errors are read by operators at start-up, not by developers.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

EXAMPLES = (
    "mssql://user:password@host:1433/ghostcrm_main?driver=ODBC+Driver+18+for+SQL+Server, "
    "postgres://user:password@host:5432/dbname or sqlite:///path/to/file.sqlite3"
)

POSTGRES_OPTION_KEYS = ("sslmode", "connect_timeout", "application_name", "sslrootcert")
# Query parameters of an mssql:// URL (case-insensitive) that map onto mssql-django's OPTIONS.
MSSQL_OPTION_KEYS = {
    "driver",
    "extra_params",
    "dsn",
    "host_is_server",
    "unicode_results",
    "connection_timeout",
    "encrypt",
    "trustservercertificate",
    "tds_version",
    "isolation_level",
}
# mssql-django runs `SET TRANSACTION ISOLATION LEVEL <value>` with the value as written: only these.
MSSQL_ISOLATION_LEVELS = {"READ UNCOMMITTED", "READ COMMITTED", "REPEATABLE READ", "SNAPSHOT", "SERIALIZABLE"}
MSSQL_DEFAULT_DRIVER = "ODBC Driver 18 for SQL Server"
FREETDS_DEFAULT_TDS_VERSION = "7.4"
# Encrypt= values of the Microsoft ODBC drivers (17 and 18); FreeTDS spells its setting Encryption=.
MS_ENCRYPT_VALUES = {"yes", "no", "true", "false", "mandatory", "optional", "strict"}
FREETDS_ENCRYPTION = {"yes": "require", "true": "require", "no": "off", "false": "off", "require": "require",
                      "request": "request", "off": "off"}  # fmt: skip
TDS_VERSIONS = {"7.0", "7.1", "7.2", "7.3", "7.4", "8.0", "auto"}


def is_freetds(driver: str) -> bool:
    return "freetds" in driver.lower() or driver.lower().endswith("libtdsodbc.so")


def redact(url: str) -> str:
    """The URL with its password replaced, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


SCHEMES = {
    "sqlite": "sqlite", "sqlite3": "sqlite",
    "postgres": "postgres", "postgresql": "postgres", "pgsql": "postgres",
    "mssql": "mssql", "sqlserver": "mssql",
}  # fmt: skip


def parse_database_url(url: str, *, variable: str, postgres_engine: str) -> dict[str, Any]:
    """Return a ``DATABASES`` entry for ``url``; ``variable`` names the setting in error messages.

    django-environ's ``db_url_config`` parses the URL. What stays ours: the schemes we support, one sentence
    per mistake, and the mapping of an ``mssql://`` URL's parameters onto mssql-django's OPTIONS.
    """
    if not url or "://" not in url:
        raise ImproperlyConfigured(f"{variable} is not a database URL (got {url!r}); set it to one of: {EXAMPLES}.")
    parts = urlsplit(url)
    kind = SCHEMES.get(parts.scheme.lower())
    if kind is None:
        raise ImproperlyConfigured(
            f"{variable} uses the unsupported scheme {parts.scheme.lower()!r}; use one of: {EXAMPLES}."
        )
    try:
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        raise ImproperlyConfigured(
            f"{variable} has an invalid port in {redact(url)!r}; use a number such as 5432 or 1433."
        ) from None
    if kind == "sqlite":
        if parts.netloc or unquote(parts.path) in {"", "/"}:
            raise ImproperlyConfigured(
                f"{variable}={url!r} names no file; write sqlite:///relative.sqlite3 or "
                "sqlite:////absolute/path.sqlite3."
            )
        name = environ.Env.db_url_config("sqlite" + url[len(parts.scheme) :])["NAME"]
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": name}
    config = environ.Env.db_url_config(
        parts._replace(scheme="postgres" if kind == "postgres" else "mssql", query="").geturl()
    )
    if not config.get("HOST") or not config.get("NAME"):
        raise ImproperlyConfigured(f"{variable}={redact(url)!r} needs a host and a database name, e.g. {EXAMPLES}.")
    config["PORT"] = str(config.get("PORT") or "")
    config.pop("OPTIONS", None)
    query = {key.lower(): values[-1] for key, values in parse_qs(parts.query, keep_blank_values=True).items()}
    if kind == "postgres":
        options = {key: query[key] for key in POSTGRES_OPTION_KEYS if query.get(key)}
        return config | {"ENGINE": postgres_engine} | ({"OPTIONS": options} if options else {})
    return config | {"ENGINE": "mssql", "OPTIONS": mssql_options(query, variable=variable)}


def _freetds_params(query: dict[str, str], encrypt: str, *, variable: str) -> list[str]:
    if "trustservercertificate" in query:
        raise ImproperlyConfigured(
            f"{variable}: TrustServerCertificate is a setting of Microsoft's ODBC drivers, not FreeTDS; "
            "remove it (FreeTDS checks certificates only when freetds.conf names a CA file)."
        )
    tds_version = query.get("tds_version", FREETDS_DEFAULT_TDS_VERSION).strip().lower()
    if tds_version not in TDS_VERSIONS:
        raise ImproperlyConfigured(
            f"{variable} has TDS_Version={tds_version!r}; use one of {', '.join(sorted(TDS_VERSIONS))} "
            "(7.4 for SQL Server 2012 and later)."
        )
    params = [f"TDS_Version={tds_version}"]
    if encrypt:
        if encrypt not in FREETDS_ENCRYPTION:
            raise ImproperlyConfigured(
                f"{variable} has Encrypt={encrypt!r}; with FreeTDS use yes, no, require, request or off."
            )
        params.append(f"Encryption={FREETDS_ENCRYPTION[encrypt]}")
    return params


def _microsoft_params(query: dict[str, str], encrypt: str, *, variable: str) -> list[str]:
    if "tds_version" in query:
        raise ImproperlyConfigured(
            f"{variable}: TDS_Version is a FreeTDS setting; use it with driver=FreeTDS or remove it."
        )
    params = []
    if encrypt:
        if encrypt not in MS_ENCRYPT_VALUES:
            raise ImproperlyConfigured(
                f"{variable} has Encrypt={encrypt!r}; use one of {', '.join(sorted(MS_ENCRYPT_VALUES))}."
            )
        params.append(f"Encrypt={query['encrypt'].strip()}")
    if "trustservercertificate" in query:
        trust = query["trustservercertificate"].strip().lower()
        if trust not in {"yes", "no", "true", "false"}:
            raise ImproperlyConfigured(f"{variable} has TrustServerCertificate={trust!r}; use yes or no.")
        params.append(f"TrustServerCertificate={query['trustservercertificate'].strip()}")
    return params


def _isolation_level(raw: str, *, variable: str) -> str:
    level = " ".join(raw.upper().replace("_", " ").split())
    if level not in MSSQL_ISOLATION_LEVELS:
        raise ImproperlyConfigured(
            f"{variable} has isolation_level={raw!r}; use one of "
            f"{', '.join(sorted(MSSQL_ISOLATION_LEVELS))} (spaces as + or _)."
        )
    return level


def _plain_option(key: str, raw: str, *, variable: str) -> Any:
    if key in {"host_is_server", "unicode_results"}:
        return raw.lower() in {"1", "true", "yes"}
    if key == "connection_timeout":
        try:
            return int(raw)
        except ValueError:
            raise ImproperlyConfigured(f"{variable} has connection_timeout={raw!r}; use a number of seconds.") from None
    return raw


def mssql_options(query: dict[str, str], *, variable: str) -> dict[str, Any]:
    """mssql-django OPTIONS from the URL's query string.

    Microsoft drivers: ``driver=ODBC Driver 18 for SQL Server`` (default) or 17, with ``Encrypt`` and
    ``TrustServerCertificate`` passed through ``extra_params``. FreeTDS: ``driver=FreeTDS`` with
    ``TDS_Version`` (default 7.4) and ``Encrypt`` written as FreeTDS's ``Encryption``; the host and port
    are given to the driver directly (``host_is_server``) unless ``dsn`` names a freetds.conf entry.
    """
    unknown = set(query) - MSSQL_OPTION_KEYS
    if unknown:
        raise ImproperlyConfigured(
            f"{variable} has unknown parameters {sorted(unknown)}; allowed are "
            "driver, Encrypt, TrustServerCertificate, TDS_Version, isolation_level, extra_params, dsn, "
            "host_is_server, unicode_results and connection_timeout."
        )
    driver = query.get("driver", MSSQL_DEFAULT_DRIVER).strip()
    if not driver:
        raise ImproperlyConfigured(f"{variable} has an empty driver=; use e.g. driver=ODBC+Driver+18+for+SQL+Server.")
    freetds = is_freetds(driver)
    options: dict[str, Any] = {"driver": driver}
    encrypt = query.get("encrypt", "").strip().lower()
    driver_params = (_freetds_params if freetds else _microsoft_params)(query, encrypt, variable=variable)
    extra = ([query["extra_params"]] if query.get("extra_params") else []) + driver_params
    if freetds:
        options["host_is_server"] = True
    if extra:
        options["extra_params"] = ";".join(extra)
    if "isolation_level" in query:
        options["isolation_level"] = _isolation_level(query["isolation_level"], variable=variable)
    for key in ("dsn", "host_is_server", "unicode_results", "connection_timeout"):
        if key in query:
            options[key] = _plain_option(key, query[key], variable=variable)
    if freetds and "dsn" in options and "host_is_server" not in query:
        options["host_is_server"] = False  # the DSN's freetds.conf entry says where the server is
    return options
