"""``make demo``'s billing seed: the README's plans (with "starter"), a history that fills the billing pages and
the revenue dashboard without leaving anything overdue, a draft to finalise, and nothing more on a second run."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from billing import selectors
from billing.models import Customer, Invoice, MrrMovement, Plan, Subscription
from billing.services.demo import demo_catalogue_seed, demo_history_seed
from ghostcrm.audit.services import Actor
from tenants.keys import service_key_create
from tests.billing.factories import ACTOR, make_organization

pytestmark = pytest.mark.django_db


def test_the_demo_catalogue_has_the_readmes_starter_plan_and_is_idempotent() -> None:
    plans = demo_catalogue_seed()
    assert [plan.code for plan in plans] == ["starter", "team", "business"]
    assert all(plan.active and plan.currency == "EUR" for plan in plans)
    demo_catalogue_seed()
    assert Plan.objects.count() == 3


def test_the_readmes_first_api_example_works_with_the_demo_plans(redis_conn: Any) -> None:
    demo_catalogue_seed()
    _, key = service_key_create(name="demo", scopes=["organizations:write"], actor=Actor.system("test"))
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    response = api.post(
        "/api/v1/organizations/",
        {"client_name": "ACME Corp", "admin_email": "admin@acme.com", "plan": "starter"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="signup-7f3a",
    )
    assert response.status_code == 202, response.content
    assert response.json()["status"] == "pending"


def test_the_demo_history_fills_the_billing_pages_and_the_dashboard(admin_session: Any) -> None:
    demo_catalogue_seed()
    organizations = [make_organization(status="pending") for _ in range(3)]
    assert demo_history_seed(organization_ids=[o.pk for o in organizations], actor=ACTOR) == 3

    subscriptions = Subscription.objects.filter(status="active")
    assert sorted(s.plan.code for s in subscriptions) == ["business", "team", "team"]  # starter upgraded to team
    assert Invoice.objects.filter(status="paid").count() >= 6
    assert Invoice.objects.filter(status="draft", billing_reason="manual").count() == 1
    now = timezone.now()
    assert not Invoice.objects.filter(status="open", due_date__lte=now).exists()  # dunning has nothing to do
    assert MrrMovement.objects.filter(kind="expansion").exists()
    issued = list(Invoice.objects.exclude(number=None).order_by("number").values_list("finalized_at", flat=True))
    assert issued == sorted(issued)  # numbered in the order of their dates, as a real history would be

    summary = selectors.revenue_summary(currency="EUR")
    assert summary.mrr == 8 * 1_200 + 3 * 1_200 + 240_000 // 12
    assert sum(1 for row in summary.months if row.new) >= 3  # started in three different months
    dashboard = admin_session.get("/admin/billing/revenuedashboard/").content.decode()
    assert "No paying subscriptions yet" not in dashboard
    assert "<rect" in dashboard

    assert demo_history_seed(organization_ids=[o.pk for o in organizations], actor=ACTOR) == 0  # a second run
    assert Customer.objects.count() == 3
    assert Invoice.objects.filter(billing_reason="manual").count() == 1
