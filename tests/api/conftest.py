from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from rest_framework.test import APIClient

from ghostcrm.audit.services import Actor
from tenants.keys import service_key_create
from tests.billing.conftest import make_plan

ALL_SCOPES = ["organizations:read", "organizations:write", "organizations:lifecycle"]


@pytest.fixture(autouse=True)
def _fresh_redis(redis_conn: Any) -> Iterator[None]:
    """Rate-limit counters and queues start empty in every test."""
    yield


@pytest.fixture
def billing_plans(db: Any) -> list[str]:
    """Active plans "pro" and "starter", so request bodies may name them (a plan code must name an active plan)."""
    return [make_plan(code, amount).code for code, amount in (("pro", 9_000), ("starter", 2_000))]


@pytest.fixture
def make_key() -> Callable[..., tuple[Any, str]]:
    def make(scopes: list[str] | None = None, **kwargs: Any) -> tuple[Any, str]:
        return service_key_create(
            name=kwargs.pop("name", "ci"), scopes=scopes or ALL_SCOPES, actor=Actor.system("test"), **kwargs
        )

    return make


@pytest.fixture
def api(make_key: Callable[..., tuple[Any, str]]) -> APIClient:
    """An API client carrying a key with every scope."""
    _, raw = make_key()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client
