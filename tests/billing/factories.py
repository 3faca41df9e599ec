"""factory-boy factories of the billing tests: organisations to bill, products, plans (with tiers), tax rates.

``make_organization`` and ``make_plan`` are the short spellings the tests use; fixtures live in conftest.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import factory
from factory.django import DjangoModelFactory

from billing.models import Plan, PlanTier, Product, TaxRate
from ghostcrm.audit.services import Actor
from ghostcrm.organizations.models import Organization

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
ACTOR = Actor.system("tests")


class OrganizationFactory(DjangoModelFactory):  # type: ignore[misc]
    """An organisation as provisioning leaves it (``active`` unless told), validated like the service does."""

    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"ACME {n + 1}")
    slug = factory.Sequence(lambda n: f"acme-{n + 1}")
    admin_email = factory.LazyAttribute(lambda o: f"admin@{o.slug}.example")
    status = "active"

    @classmethod
    def _create(cls, model_class: type[Organization], *args: Any, **kwargs: Any) -> Organization:
        status = kwargs.pop("status")
        organization = model_class(*args, **kwargs)
        organization.full_clean()
        organization.status = status
        organization.save()
        return organization


class ProductFactory(DjangoModelFactory):  # type: ignore[misc]
    class Meta:
        model = Product
        django_get_or_create = ("name",)

    name = "GhostCRM"


class PlanFactory(DjangoModelFactory):  # type: ignore[misc]
    """A plan (``unit_amount`` in minor units); ``tiers=[(up_to, unit, flat), ...]`` adds its tiers."""

    class Meta:
        model = Plan
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"plan-{n + 1}")
    product = factory.SubFactory(ProductFactory)
    name = factory.LazyAttribute(lambda o: o.code.replace("-", " ").title())
    currency = "EUR"
    interval = "month"
    scheme = "flat"
    tiers_mode = ""
    unit_amount = 3_000
    trial_days = 0

    @factory.post_generation
    def tiers(self, create: bool, extracted: Sequence[tuple[int | None, int, int]] | None, **kwargs: Any) -> None:
        for up_to, unit, flat in extracted or ():
            PlanTier.objects.create(plan=self, up_to=up_to, unit_amount=unit, flat_amount=flat)


class TaxRateFactory(DjangoModelFactory):  # type: ignore[misc]
    class Meta:
        model = TaxRate

    name = "VAT"
    percentage = "20.0000"
    country = "FR"


def make_organization(*, name: str | None = None, status: str = "active") -> Organization:
    return OrganizationFactory(status=status, **({"name": name} if name else {}))


def make_plan(code: str, amount: int, *, tiers: Sequence[tuple[int | None, int, int]] = (), **fields: Any) -> Plan:
    """``make_plan("pro", 9_000, scheme="per_seat", tiers=[...])``: a validated plan, in EUR monthly unless told."""
    plan = PlanFactory.build(code=code, unit_amount=amount, product=ProductFactory(), **fields)
    plan.full_clean()
    plan.save()
    for up_to, unit, flat in tiers:
        PlanTier.objects.create(plan=plan, up_to=up_to, unit_amount=unit, flat_amount=flat)
    return plan
