"""MAIN_DATABASE_URL for SQL Server: mssql-django OPTIONS, the ODBC connection string, one-sentence errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyodbc
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db.utils import Error as DjangoDatabaseError
from mssql.base import DatabaseWrapper

from ghostcrm.dburl import parse_database_url
from ghostcrm.mssql.drivers import describe_driver_problem

ROOT = Path(__file__).resolve().parents[2]


def parse(url: str) -> dict[str, Any]:
    return parse_database_url(url, variable="MAIN_DATABASE_URL", postgres_engine="django.db.backends.postgresql")


def connection_string(config: dict[str, Any]) -> str:
    """What mssql-django hands to pyodbc.connect for this DATABASES entry."""
    wrapper = DatabaseWrapper({**config, "TIME_ZONE": None, "CONN_MAX_AGE": 0, "CONN_HEALTH_CHECKS": False,
                               "AUTOCOMMIT": True, "ATOMIC_REQUESTS": False, "TEST": {}}, alias="probe")  # fmt: skip
    return wrapper._build_connection_string(wrapper.get_connection_params(), config["OPTIONS"]["driver"])


def test_microsoft_driver_url_maps_to_options_and_connection_string() -> None:
    config = parse(
        "mssql://app:p%3Bss@sql.example.com:1433/ghostcrm_main?driver=ODBC+Driver+18+for+SQL+Server"
        "&Encrypt=yes&TrustServerCertificate=no&connection_timeout=15"
    )
    assert config["ENGINE"] == "mssql"
    assert config["PASSWORD"] == "p;ss"
    assert config["OPTIONS"] == {
        "driver": "ODBC Driver 18 for SQL Server",
        "extra_params": "Encrypt=yes;TrustServerCertificate=no",
        "connection_timeout": 15,
    }
    assert connection_string(config) == (
        "DRIVER=ODBC Driver 18 for SQL Server;SERVER=sql.example.com,1433;UID=app;PWD={p;ss};"
        "DATABASE=ghostcrm_main;Encrypt=yes;TrustServerCertificate=no"
    )


def test_isolation_level_is_validated_before_mssql_django_formats_it_into_sql() -> None:
    for spelling in ("read_committed", "READ+COMMITTED", "Read Committed"):
        assert parse(f"mssql://a:b@sql/db?isolation_level={spelling}")["OPTIONS"]["isolation_level"] == "READ COMMITTED"
    assert parse("mssql://a:b@sql/db?isolation_level=snapshot")["OPTIONS"]["isolation_level"] == "SNAPSHOT"


def test_driver_defaults_to_odbc_driver_18() -> None:
    assert parse("mssql://app:pw@sql:1433/ghostcrm_main")["OPTIONS"] == {"driver": "ODBC Driver 18 for SQL Server"}


def test_freetds_url_gets_tds_version_and_talks_to_host_and_port() -> None:
    config = parse("mssql://app:pw@sql.example.com:1433/ghostcrm_main?driver=FreeTDS&Encrypt=yes")
    assert config["OPTIONS"] == {
        "driver": "FreeTDS",
        "extra_params": "TDS_Version=7.4;Encryption=require",
        "host_is_server": True,
    }
    assert connection_string(config) == (
        "DRIVER=FreeTDS;PORT=1433;SERVER=sql.example.com;UID=app;PWD=pw;DATABASE=ghostcrm_main;"
        "TDS_Version=7.4;Encryption=require"
    )
    chosen = parse("mssql://app:pw@sql:1433/db?driver=FreeTDS&TDS_Version=7.3")
    assert chosen["OPTIONS"]["extra_params"] == "TDS_Version=7.3"
    # A DSN names a freetds.conf entry, which says where the server is.
    dsn = parse("mssql://app:pw@sql:1433/db?driver=FreeTDS&dsn=main")
    assert dsn["OPTIONS"]["host_is_server"] is False and dsn["OPTIONS"]["dsn"] == "main"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("driver=FreeTDS&TrustServerCertificate=yes", "TrustServerCertificate is a setting of Microsoft's ODBC"),
        ("driver=FreeTDS&TDS_Version=9.9", "TDS_Version='9.9'; use one of 7.0, 7.1, 7.2, 7.3, 7.4, 8.0, auto"),
        ("driver=FreeTDS&Encrypt=strict", "with FreeTDS use yes, no, require, request or off"),
        ("TDS_Version=7.4", "TDS_Version is a FreeTDS setting"),
        ("Encrypt=maybe", "Encrypt='maybe'; use one of false, mandatory, no, optional, strict, true, yes"),
        ("TrustServerCertificate=perhaps", "TrustServerCertificate='perhaps'; use yes or no"),
        ("connection_timeout=soon", "connection_timeout='soon'; use a number of seconds"),
        ("driver=", "empty driver="),
        ("isolation_level=READ+COMMITTED;DROP+TABLE+x", "isolation_level='READ COMMITTED;DROP TABLE x'; use one of"),
        ("Driver=FreeTDS&tds=7.4", "unknown parameters ['tds']"),
    ],
)
def test_bad_sql_server_urls_are_one_sentence(query: str, message: str) -> None:
    with pytest.raises(ImproperlyConfigured) as info:
        parse(f"mssql://app:pw@sql:1433/ghostcrm_main?{query}")
    assert message in str(info.value)
    assert str(info.value).startswith("MAIN_DATABASE_URL")


def test_missing_odbc_driver_is_one_sentence_with_the_install_command() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GHOSTCRM_")}
    env |= {
        "DJANGO_SETTINGS_MODULE": "ghostcrm.settings",
        "MAIN_DATABASE_URL": "mssql://sa:secret@127.0.0.1:1433/ghostcrm_main?driver=ODBC+Driver+99+for+SQL+Server",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(
        "ghostcrm: the ODBC driver 'ODBC Driver 99 for SQL Server' named by MAIN_DATABASE_URL is not installed ("
    )
    assert "sudo ACCEPT_EULA=Y apt-get install -y msodbcsql99" in lines[0]
    assert "secret" not in result.stderr


MSSQL = {"ENGINE": "mssql", "OPTIONS": {"driver": "FreeTDS"}}


def _wrapped(error: Exception) -> DjangoDatabaseError:
    wrapped = DjangoDatabaseError(*error.args)
    wrapped.__cause__ = error
    return wrapped


def test_driver_problems_name_the_package_for_each_driver() -> None:
    missing = pyodbc.Error("01000", "[01000] [unixODBC][Driver Manager]Can't open lib 'FreeTDS' : file not found")
    message = describe_driver_problem(_wrapped(missing), MSSQL)
    assert message is not None
    assert message.startswith("the ODBC driver 'FreeTDS' named by MAIN_DATABASE_URL is not installed")
    assert "sudo apt-get install -y tdsodbc" in message
    dsn = pyodbc.InterfaceError("IM002", "[IM002] [unixODBC][Driver Manager]Data source name not found")
    assert "is not installed" in (describe_driver_problem(_wrapped(dsn), MSSQL) or "")
    no_libodbc = ImproperlyConfigured("Error loading pyodbc module: libodbc.so.2: cannot open shared object file")
    assert describe_driver_problem(no_libodbc, MSSQL) == (
        "the SQL Server driver cannot load unixODBC (libodbc.so.2) for MAIN_DATABASE_URL; install it with "
        "sudo apt-get install -y unixodbc, then the ODBC driver itself."
    )
    # Anything else (a server that does not answer, a wrong password) is left to the usual message.
    refused = pyodbc.OperationalError("08S01", "[08S01] Unable to connect: Adaptive Server is unavailable")
    assert describe_driver_problem(_wrapped(refused), MSSQL) is None
    assert describe_driver_problem(_wrapped(missing), {"ENGINE": "django.db.backends.postgresql"}) is None
