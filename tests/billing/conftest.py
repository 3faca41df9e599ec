"""Billing fixtures. The factories and the fixed clock (every service takes ``at``) are in ``factories.py``;
``make_plan``, ``make_organization``, ``ACTOR`` and ``T0`` are re-exported here for the other apps' tests that
still import them from this module."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from billing.models import Plan, TaxRate
from ghostcrm.organizations.models import Organization
from tests.billing.factories import ACTOR, T0, TaxRateFactory, make_organization, make_plan

__all__ = ["ACTOR", "T0", "make_organization", "make_plan"]


@pytest.fixture
def organization(db: Any) -> Organization:
    return make_organization()


@pytest.fixture
def plans(db: Any) -> dict[str, Plan]:
    return {
        "basic": make_plan("basic", 3_000),  # 30.00 EUR a month
        "pro": make_plan("pro", 9_000),  # 90.00 EUR a month
        "seat": make_plan("seat", 1_000, scheme="per_seat", seat_limit=50),  # 10.00 EUR per seat
        "yearly": make_plan("yearly", 120_000, interval="year"),  # 1,200.00 EUR a year
    }


@pytest.fixture
def vat(db: Any) -> TaxRate:
    return TaxRateFactory()


@pytest.fixture
def run_on_commit(django_capture_on_commit_callbacks: Any) -> Callable[..., Any]:
    """Run a callable and then the on-commit callbacks it queued (e-mails), as a real commit would."""

    def run(call: Callable[[], Any]) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return call()

    return run
