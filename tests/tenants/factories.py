"""factory-boy factories for the tenants tests: organisations in any status, their operations, billing plans.

Factories write rows directly (no service, no audit event, no job): for a state to test from. Tests of the
request itself go through ``tenants.services.organization_request``.
"""

from __future__ import annotations

from typing import Any

import factory
from django.utils import timezone
from django.utils.text import slugify

from billing.models import Plan, Product
from ghostcrm.organizations.models import Organization
from ghostcrm.organizations.schema_names import schema_name_from_slug
from tenants.models import Operation


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Client {n}")
    slug = factory.LazyAttribute(lambda o: slugify(o.name))
    schema_name = factory.LazyAttribute(lambda o: schema_name_from_slug(o.slug))
    admin_email = factory.LazyAttribute(lambda o: f"admin@{o.slug}.test")
    status = Organization.Status.PENDING
    status_changed_at = factory.LazyFunction(timezone.now)


class OperationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Operation

    organization = factory.SubFactory(OrganizationFactory)
    step = "request"
    outcome = Operation.Outcome.SUCCESS
    started_at = factory.LazyFunction(timezone.now)
    finished_at = factory.LazyAttribute(lambda o: o.started_at)
    duration_ms = 0


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product
        django_get_or_create = ("name",)

    name = "GhostCRM"


class PlanFactory(factory.django.DjangoModelFactory):
    """An active monthly flat plan in EUR: ``PlanFactory(code="pro", unit_amount=9_000)`` is named "Pro"."""

    class Meta:
        model = Plan

    code = factory.Sequence(lambda n: f"plan-{n}")
    product = factory.SubFactory(ProductFactory)
    name = factory.LazyAttribute(lambda o: o.code.replace("-", " ").title())
    currency = "EUR"
    interval = "month"
    scheme = "flat"
    unit_amount = 1_000

    @classmethod
    def _create(cls, model_class: type[Plan], *args: Any, **kwargs: Any) -> Plan:
        plan = model_class(*args, **kwargs)
        plan.full_clean()
        plan.save()
        return plan
