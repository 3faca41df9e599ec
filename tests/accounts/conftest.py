"""Fixtures of the authentication-security tests (factories in ``factories.py``, steps in ``helpers.py``)."""

from __future__ import annotations

import pytest

from ghostcrm.accounts.models import User
from tests.accounts.factories import SuperAdminFactory, UserFactory


@pytest.fixture
def staff_user(db: None) -> User:
    return UserFactory(email="sam.support@ghostcrm.test", first_name="Sam", last_name="Support")


@pytest.fixture
def boss(db: None) -> User:
    return SuperAdminFactory(email="bea.boss@ghostcrm.test", first_name="Bea", last_name="Boss")
