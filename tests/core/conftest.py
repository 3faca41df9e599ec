from __future__ import annotations

from typing import Any

import pytest

from ghostcrm.organizations.models import Organization
from tests.integrations.conftest import make_organization


@pytest.fixture
def organization(db: Any) -> Organization:
    return make_organization()
