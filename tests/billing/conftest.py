"""Billing fixtures: organisations, plans and a fixed clock (every service takes ``at``)."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
from typing import Any

import pytest

from billing.models import Plan, PlanTier, Product, TaxRate
from ghostcrm.audit.services import Actor
from ghostcrm.organizations.models import Organization

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
ACTOR = Actor.system("tests")
_counter = itertools.count(1)


def make_organization(*, name: str | None = None, status: str = "active") -> Organization:
    n = next(_counter)
    slug = f"acme-{n}"
    organization = Organization(name=name or f"ACME {n}", slug=slug, admin_email=f"admin@{slug}.example")
    organization.full_clean()
    organization.status = status
    organization.save()
    return organization


def make_plan(
    code: str,
    amount: int,
    *,
    currency: str = "EUR",
    interval: str = "month",
    scheme: str = "flat",
    tiers_mode: str = "",
    tiers: list[tuple[int | None, int, int]] = (),  # type: ignore[assignment]
    trial_days: int = 0,
    seat_limit: int | None = None,
    contact_limit: int | None = None,
) -> Plan:
    product, _ = Product.objects.get_or_create(name="GhostCRM")
    plan = Plan(
        code=code,
        product=product,
        name=code.replace("-", " ").title(),
        currency=currency,
        interval=interval,
        scheme=scheme,
        tiers_mode=tiers_mode,
        unit_amount=amount,
        trial_days=trial_days,
        seat_limit=seat_limit,
        contact_limit=contact_limit,
    )
    plan.full_clean()
    plan.save()
    for up_to, unit, flat in tiers:
        PlanTier.objects.create(plan=plan, up_to=up_to, unit_amount=unit, flat_amount=flat)
    return plan


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
    return TaxRate.objects.create(name="VAT", percentage="20.0000", country="FR")


@pytest.fixture
def run_on_commit(django_capture_on_commit_callbacks: Any) -> Callable[..., Any]:
    """Run a callable and then the on-commit callbacks it queued (e-mails), as a real commit would."""

    def run(call: Callable[[], Any]) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return call()

    return run
