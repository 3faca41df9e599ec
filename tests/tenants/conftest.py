from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import django_rq
import pytest
from rq import SimpleWorker
from rq.registry import FailedJobRegistry, FinishedJobRegistry

from ghostcrm.organizations.models import Organization
from tenants import services
from tests.tenants.helpers import ACTOR, TEMPLATES


@pytest.fixture(autouse=True)
def _isolation(settings: Any, tmp_path: Path) -> None:
    # Retries in tests run at once (no scheduler needed); exports go to the test's own folder.
    settings.PROVISIONING_RETRY_INTERVALS = [0, 0]
    settings.TENANT_BACKUPS_DIR = tmp_path / "backups"


@pytest.fixture
def run_worker(redis_conn: Any) -> Callable[[], int]:
    """Run the provisioning queue in this process until it is empty (RQ's burst mode); returns jobs run."""

    def run() -> int:
        queue = django_rq.get_queue("provisioning")
        registries = (FinishedJobRegistry(queue=queue), FailedJobRegistry(queue=queue))
        before = sum(registry.count for registry in registries)
        SimpleWorker([queue], connection=queue.connection).work(burst=True)
        return sum(registry.count for registry in registries) - before

    return run


@pytest.fixture
def request_organization() -> Callable[..., Organization]:
    def make(name: str = "ACME Corp", email: str = "admin@acme.test", **kwargs: Any) -> Organization:
        return services.organization_request(name=name, admin_email=email, actor=ACTOR, **kwargs)

    return make


@pytest.fixture
def template_copy(tmp_path: Path, settings: Any) -> Iterator[Path]:
    """A copy of the real templates in a folder the test may break; TENANT_TEMPLATES_DIR points at it."""
    folder = tmp_path / "templates"
    folder.mkdir()
    for template in sorted(TEMPLATES.glob("*.pgsql")):
        (folder / template.name).write_text(template.read_text())
    settings.TENANT_TEMPLATES_DIR = folder
    yield folder
