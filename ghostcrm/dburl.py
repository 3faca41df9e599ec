"""Database URLs from the environment, turned into Django ``DATABASES`` entries.

Every failure is an ``ImproperlyConfigured`` whose message is one sentence naming the variable and
what to do, because these errors are read by operators at start-up, not by developers.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

EXAMPLES = (
    "mssql://user:password@host:1433/ghostcrm_main?driver=ODBC+Driver+18+for+SQL+Server, "
    "postgres://user:password@host:5432/dbname or sqlite:///path/to/file.sqlite3"
)

# Query parameters of an mssql:// URL that map onto mssql-django's OPTIONS.
MSSQL_OPTION_KEYS = {"driver", "extra_params", "dsn", "host_is_server", "unicode_results", "connection_timeout"}


def redact(url: str) -> str:
    """The URL with its password replaced, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def parse_database_url(url: str, *, variable: str, postgres_engine: str) -> dict[str, Any]:
    """Return a ``DATABASES`` entry for ``url``; ``variable`` names the setting in error messages."""
    if not url or "://" not in url:
        raise ImproperlyConfigured(f"{variable} is not a database URL (got {url!r}); set it to one of: {EXAMPLES}.")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        raise ImproperlyConfigured(
            f"{variable} has an invalid port in {redact(url)!r}; use a number such as 5432 or 1433."
        ) from None
    query = {key.lower(): values[-1] for key, values in parse_qs(parts.query).items()}

    if scheme in {"sqlite", "sqlite3"}:
        path = unquote(parts.path)
        if parts.netloc or not path or path == "/":
            raise ImproperlyConfigured(
                f"{variable}={url!r} names no file; write sqlite:///relative.sqlite3 or "
                "sqlite:////absolute/path.sqlite3."
            )
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": path[1:] if path.startswith("/") else path}

    name = unquote(parts.path.lstrip("/"))
    if not parts.hostname or not name:
        raise ImproperlyConfigured(f"{variable}={redact(url)!r} needs a host and a database name, e.g. {EXAMPLES}.")
    config: dict[str, Any] = {
        "NAME": name,
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname,
        "PORT": str(port or ""),
    }
    if scheme in {"postgres", "postgresql", "pgsql"}:
        config["ENGINE"] = postgres_engine
        options: dict[str, Any] = {}
        for key in ("sslmode", "connect_timeout", "application_name", "sslrootcert"):
            if key in query:
                options[key] = query[key]
        if options:
            config["OPTIONS"] = options
        return config
    if scheme in {"mssql", "sqlserver"}:
        config["ENGINE"] = "mssql"
        return config | {"OPTIONS": mssql_options(query, variable=variable)}
    raise ImproperlyConfigured(f"{variable} uses the unsupported scheme {scheme!r}; use one of: {EXAMPLES}.")


def mssql_options(query: dict[str, str], *, variable: str) -> dict[str, Any]:
    """mssql-django OPTIONS from the URL's query string (driver, Encrypt, TrustServerCertificate...)."""
    unknown = set(query) - MSSQL_OPTION_KEYS - {"encrypt", "trustservercertificate"}
    if unknown:
        raise ImproperlyConfigured(
            f"{variable} has unknown parameters {sorted(unknown)}; allowed are "
            f"{sorted(MSSQL_OPTION_KEYS | {'Encrypt', 'TrustServerCertificate'})}."
        )
    options: dict[str, Any] = {"driver": query.get("driver", "ODBC Driver 18 for SQL Server")}
    extra = [query["extra_params"]] if query.get("extra_params") else []
    if "encrypt" in query:
        extra.append(f"Encrypt={query['encrypt']}")
    if "trustservercertificate" in query:
        extra.append(f"TrustServerCertificate={query['trustservercertificate']}")
    if extra:
        options["extra_params"] = ";".join(extra)
    for key in ("dsn", "host_is_server", "unicode_results", "connection_timeout"):
        if key in query:
            value: Any = query[key]
            if key in {"host_is_server", "unicode_results"}:
                value = value.lower() in {"1", "true", "yes"}
            elif key == "connection_timeout":
                value = int(value)
            options[key] = value
    return options
