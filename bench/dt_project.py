"""The django-tenants reference: a small generated Django project, run from bench/.venv-dt (django-tenants
4.0.1 and its Django/psycopg pinned in bench/requirements-django-tenants.txt), against its own database.

Shared apps: django_tenants and `customers` (Client(TenantMixin), Domain). The one tenant app, `crm`, has
migrations generated from SQL text: RunSQL of our rendered templates (workload 1) or of the bench's table
and each rollout file (workloads 3 and 4), so both products create the same tables.
A management command, `bench_tenant`, creates tenants (timed inside the process), clones schemas with
django-tenants' CloneSchema, and registers scratch schemas in bulk.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.common import BenchError, admin_conn

BENCH = Path(__file__).resolve().parent
VENV = BENCH / ".venv-dt"
REQUIREMENTS = BENCH / "requirements-django-tenants.txt"

SETTINGS = """
import os
SECRET_KEY = "bench"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
DATABASES = {"default": {"ENGINE": "django_tenants.postgresql_backend", "NAME": os.environ["DT_DB"],
    "USER": os.environ.get("DT_USER", "postgres"), "HOST": os.environ.get("DT_HOST", "127.0.0.1"),
    "PORT": os.environ.get("DT_PORT", "5432")}}
DATABASE_ROUTERS = ("django_tenants.routers.TenantSyncRouter",)
SHARED_APPS = ["django_tenants", "django.contrib.contenttypes", "customers"]
TENANT_APPS = ["crm"]
INSTALLED_APPS = SHARED_APPS + TENANT_APPS
TENANT_MODEL = "customers.Client"
TENANT_DOMAIN_MODEL = "customers.Domain"
TENANT_MULTIPROCESSING_MAX_PROCESSES = int(os.environ.get("DT_PROCESSES", "4"))
ROOT_URLCONF = "urls"
MIDDLEWARE = []
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
"""

CUSTOMERS_MODELS = """
from django.db import models
from django_tenants.models import DomainMixin, TenantMixin


class Client(TenantMixin):
    name = models.CharField(max_length=100)
    auto_create_schema = True


class Domain(DomainMixin):
    pass
"""

COMMAND = """
import json
import time

from django.core.management.base import BaseCommand
from django.db import connection
from django_tenants.clone import CloneSchema

from customers.models import Client


class Command(BaseCommand):
    def add_arguments(self, parser):
        parser.add_argument("action", choices=["create", "clone", "register"])
        parser.add_argument("schemas", nargs="+")
        parser.add_argument("--base", default="")

    def handle(self, *args, **options):
        times = []
        for schema in options["schemas"]:
            started = time.perf_counter()
            if options["action"] == "create":
                Client(schema_name=schema, name=schema).save(verbosity=0)
            elif options["action"] == "clone":
                CloneSchema().clone_schema(options["base"], schema)
                connection.set_schema_to_public()
            times.append(time.perf_counter() - started)
        if options["action"] == "register":
            with connection.cursor() as cursor:
                for schema in options["schemas"]:
                    cursor.execute(f'CREATE SCHEMA "{schema}"')
            Client.objects.bulk_create([Client(schema_name=s, name=s) for s in options["schemas"]], batch_size=500)
        self.stdout.write(json.dumps(times))
"""

MIGRATION = """
from django.db import migrations

SQL = {sql!r}


class Migration(migrations.Migration):
    dependencies = {deps!r}
    operations = [migrations.RunSQL(SQL)]
"""


def ensure_venv() -> Path:
    """bench/.venv-dt with the pinned requirements (created once, reused while the pins are unchanged)."""
    python = VENV / "bin" / "python"
    marker = VENV / ".installed"
    if not marker.exists() or marker.read_text() != REQUIREMENTS.read_text():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)  # noqa: S603
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)], check=True)  # noqa: S603
        marker.write_text(REQUIREMENTS.read_text())
    return python


@dataclass
class DtProject:
    root: Path
    db: str
    python: Path

    def add_migration(self, sql: str) -> str:
        migrations = self.root / "crm" / "migrations"
        existing = sorted(p.stem for p in migrations.glob("0*.py"))
        name = f"{len(existing) + 1:04d}_bench"
        deps = [("crm", existing[-1])] if existing else []
        (migrations / f"{name}.py").write_text(MIGRATION.format(sql=sql, deps=deps))
        return name

    def manage(self, *args: str, processes: int = 4) -> str:
        env = {"DT_DB": self.db, "DT_PROCESSES": str(processes), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(self.root)}
        proc = subprocess.run(  # noqa: S603
            [str(self.python), "manage.py", *args], cwd=self.root, env=env, capture_output=True, text=True
        )
        if proc.returncode != 0:
            raise BenchError("django-tenants manage.py " + " ".join(args[:3]), proc.stderr[-2000:])
        return proc.stdout

    def timed(self, *args: str, processes: int = 4) -> float:
        started = time.perf_counter()
        self.manage(*args, processes=processes)
        return time.perf_counter() - started

    def tenant_times(self, action: str, schemas: list[str], base: str = "") -> list[float]:
        extra = ["--base", base] if base else []
        return [float(x) for x in json.loads(self.manage("bench_tenant", action, *schemas, *extra))]


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@contextmanager
def dt_project(first_sql: str) -> Iterator[DtProject]:
    """A migrated django-tenants project whose tenant app's 0001 is RunSQL(first_sql); its database is dropped."""
    python = ensure_venv()
    db = f"ghostcrm_bench_dt_{uuid.uuid4().hex[:6]}"
    with tempfile.TemporaryDirectory(prefix="bench_dt_") as tmp:
        root = Path(tmp)
        _write(root / "settings.py", SETTINGS)
        _write(root / "urls.py", "urlpatterns = []\n")
        _write(
            root / "manage.py",
            "import os, sys\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 'settings')\n"
            "from django.core.management import execute_from_command_line\nexecute_from_command_line(sys.argv)\n",
        )
        _write(root / "customers" / "__init__.py", "")
        _write(root / "customers" / "models.py", CUSTOMERS_MODELS)
        _write(root / "customers" / "management" / "__init__.py", "")
        _write(root / "customers" / "management" / "commands" / "__init__.py", "")
        _write(root / "customers" / "management" / "commands" / "bench_tenant.py", COMMAND)
        _write(root / "crm" / "__init__.py", "")
        _write(root / "crm" / "migrations" / "__init__.py", "")
        project = DtProject(root=root, db=db, python=python)
        with admin_conn() as conn:
            conn.execute(f'CREATE DATABASE "{db}"')
        try:
            project.manage("makemigrations", "customers")
            project.add_migration(first_sql)
            project.manage("migrate_schemas", "--shared")
            yield project
        finally:
            with admin_conn() as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
