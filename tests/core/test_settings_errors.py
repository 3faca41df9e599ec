"""Bad configuration is one sentence naming the variable, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from ghostcrm.dburl import parse_database_url, redact

ROOT = Path(__file__).resolve().parents[2]


def run_manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    own = ("GHOSTCRM_", "SECRET_KEY", "ALLOWED_HOSTS", "DEBUG", "FIELD_ENCRYPTION_KEYS", "EMAIL_URL", "AUDIT_HMAC_KEYS")
    base = {k: v for k, v in os.environ.items() if not k.startswith(own)}
    base["DJANGO_SETTINGS_MODULE"] = "ghostcrm.settings"
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"MAIN_DATABASE_URL": "not-a-url"}, "MAIN_DATABASE_URL is not a database URL"),
        ({"MAIN_DATABASE_URL": "mysql://u@h/db"}, "MAIN_DATABASE_URL uses the unsupported scheme 'mysql'"),
        ({"TENANT_DATABASE_URL": "sqlite:///x.sqlite3"}, "TENANT_DATABASE_URL must be a postgres:// URL"),
        ({"MAIN_DATABASE_URL": "postgres://u@h:notaport/db"}, "MAIN_DATABASE_URL has an invalid port"),
        ({"GHOSTCRM_ENV": "production"}, "SECRET_KEY must be set when GHOSTCRM_ENV=production"),
        ({"GHOSTCRM_ENV": "qa"}, "GHOSTCRM_ENV='qa' is not known"),
        (
            {"GHOSTCRM_ENV": "production", "SECRET_KEY": "x" * 60},
            "FIELD_ENCRYPTION_KEYS must be set when GHOSTCRM_ENV=production",
        ),
        (
            {"GHOSTCRM_ENV": "production", "SECRET_KEY": "x" * 60, "DEBUG": "true"},
            "DEBUG must be off when GHOSTCRM_ENV=production",
        ),
        (
            {"GHOSTCRM_ENV": "staging", "SECRET_KEY": "x" * 60, "FIELD_ENCRYPTION_KEYS": "k"},
            "ALLOWED_HOSTS must be set when GHOSTCRM_ENV=staging",
        ),
        (
            {"GHOSTCRM_ENV": "staging", "SECRET_KEY": "x" * 60, "FIELD_ENCRYPTION_KEYS": "k", "ALLOWED_HOSTS": "h"},
            "AUDIT_HMAC_KEYS must be set when GHOSTCRM_ENV=staging",
        ),
    ],
)
def test_configuration_errors_are_sentences(env: dict[str, str], expected: str) -> None:
    result = run_manage("check", **env)
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unreachable_database_names_its_variable(tmp_path: Path) -> None:
    result = run_manage(
        "migrate",
        MAIN_DATABASE_URL=f"sqlite:///{tmp_path / 'main.sqlite3'}",
        TENANT_DATABASE_URL="postgres://nobody:secret@127.0.0.1:1/nowhere",
    )
    assert result.returncode == 2
    assert "cannot connect to the tenant database" in result.stderr
    assert "TENANT_DATABASE_URL" in result.stderr
    assert "secret" not in result.stderr  # the password is redacted
    assert "Traceback" not in result.stderr


def test_an_unreachable_main_database_names_its_variable() -> None:
    result = run_manage("migrate", MAIN_DATABASE_URL="postgres://nobody:secret@127.0.0.1:1/nowhere")
    assert result.returncode == 2
    assert result.stderr.startswith("ghostcrm: cannot connect to the main database at postgres://nobody:***@")
    assert "(MAIN_DATABASE_URL)" in result.stderr and "Start that server or correct MAIN_DATABASE_URL" in result.stderr
    assert "secret" not in result.stderr and "Traceback" not in result.stderr


def test_production_passes_the_deploy_check() -> None:
    from cryptography.fernet import Fernet

    result = run_manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        GHOSTCRM_ENV="production",
        SECRET_KEY="k" * 20 + "-Zq8#vR2!mW5@xT9$pL3^nB7&" + "j" * 30,
        FIELD_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        AUDIT_HMAC_KEYS="k1:" + "a" * 48,
        ALLOWED_HOSTS="control.ghostcrm.example",
        EMAIL_URL="smtp+tls://mailer:pw@smtp.example.com:587",
    )
    assert result.returncode == 0, result.stderr + result.stdout


@pytest.mark.parametrize(
    ("url", "engine", "extra"),
    [
        ("sqlite:///var/main.sqlite3", "django.db.backends.sqlite3", {"NAME": "var/main.sqlite3"}),
        ("sqlite:////abs/main.sqlite3", "django.db.backends.sqlite3", {"NAME": "/abs/main.sqlite3"}),
        ("postgres://u:p%40ss@db:6432/main", "django.db.backends.postgresql", {"PASSWORD": "p@ss", "PORT": "6432"}),
        (
            "mssql://sa:pw@sql:1433/ghostcrm_main?driver=ODBC+Driver+18+for+SQL+Server&Encrypt=yes"
            "&TrustServerCertificate=no",
            "mssql",
            {
                "OPTIONS": {
                    "driver": "ODBC Driver 18 for SQL Server",
                    "extra_params": "Encrypt=yes;TrustServerCertificate=no",
                }
            },
        ),
    ],
)
def test_database_urls_map_to_django(url: str, engine: str, extra: dict[str, object]) -> None:
    config = parse_database_url(url, variable="X", postgres_engine="django.db.backends.postgresql")
    assert config["ENGINE"] == engine
    for key, value in extra.items():
        assert config[key] == value


def test_unknown_mssql_parameters_are_refused() -> None:
    with pytest.raises(ImproperlyConfigured, match="unknown parameters"):
        parse_database_url("mssql://u:p@h/db?drvier=x", variable="MAIN_DATABASE_URL", postgres_engine="")


def test_redact_hides_the_password() -> None:
    assert redact("postgres://u:hunter2@h/db") == "postgres://u:***@h/db"


def test_a_dotenv_file_is_read_in_development_only(tmp_path: Path) -> None:
    """The settings module, copied beside a `.env` (never written into the real checkout, which others share)."""
    package = tmp_path / "ghostcrm"
    package.mkdir()
    for name in ("__init__.py", "settings.py", "dburl.py"):
        (package / name).write_text((ROOT / "ghostcrm" / name).read_text())
    (tmp_path / ".env").write_text("SECRET_KEY=from-the-dotenv-file\nALLOWED_HOSTS=dotenv.example\n")
    probe = "import ghostcrm.settings as s; print(s.SECRET_KEY, s.ALLOWED_HOSTS)"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("GHOSTCRM_", "SECRET_KEY", "ALLOWED_HOSTS"))}

    def settings_in(environment: str, **extra: str) -> subprocess.CompletedProcess[str]:
        env = {**base, "PYTHONPATH": str(tmp_path), "GHOSTCRM_ENV": environment, **extra}
        return subprocess.run(
            [sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )

    development = settings_in("development")
    assert development.returncode == 0, development.stderr
    assert development.stdout.strip() == "from-the-dotenv-file ['dotenv.example']"
    # The environment wins over the file.
    assert settings_in("development", SECRET_KEY="from-env").stdout.startswith("from-env ")
    # Staging and production ignore it: without SECRET_KEY in the environment they refuse to start.
    staging = settings_in("staging")
    assert staging.returncode != 0 and "SECRET_KEY must be set when GHOSTCRM_ENV=staging" in staging.stderr
