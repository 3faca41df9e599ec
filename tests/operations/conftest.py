from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import django_rq
import psycopg
import pytest
from rq import SimpleWorker

from ghostcrm.audit.services import Actor
from ghostcrm.organizations.models import Organization
from tenants import services
from tests.support import tenant_conninfo

ACTOR = Actor.system("test")
TENANT_DB = pytest.mark.django_db(databases=["default", "tenants"], transaction=True)


@pytest.fixture(autouse=True)
def _isolation(settings: Any, tmp_path: Path) -> None:
    settings.PROVISIONING_RETRY_INTERVALS = [0, 0]
    settings.TENANT_BACKUPS_DIR = tmp_path / "exports"
    settings.STORAGES = {
        **settings.STORAGES,
        "backups": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "store")},
        },
    }


@pytest.fixture
def run_worker(redis_conn: Any) -> Callable[[], None]:
    def run() -> None:
        queue = django_rq.get_queue("provisioning")
        SimpleWorker([queue], connection=queue.connection).work(burst=True)

    return run


@pytest.fixture
def provision(run_worker: Callable[[], None]) -> Callable[..., Organization]:
    def make(name: str = "ACME Corp", email: str = "admin@acme.test") -> Organization:
        organization = services.organization_request(name=name, admin_email=email, actor=ACTOR)
        run_worker()
        organization.refresh_from_db()
        assert organization.status == Organization.Status.ACTIVE, organization.last_error
        return organization

    return make


def tenant_query(query: str, params: list[Any] | None = None, **conninfo: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(**tenant_conninfo(**conninfo)) as conn:
        cursor = conn.execute(query, params or [])
        return cursor.fetchall() if cursor.description else []
