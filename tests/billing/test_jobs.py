"""The scheduled jobs run on the ``billing`` queue through a real RQ worker and Redis."""

from __future__ import annotations

import datetime as dt
from typing import Any

import django_rq
import pytest
from django.utils import timezone
from rq import SimpleWorker

from billing import jobs, services
from billing.models import Invoice, Subscription
from tenants.periodic import periodic_jobs
from tests.billing.factories import ACTOR, make_organization, make_plan

# Dunning may suspend the tenant, which also takes LOGIN from its database role.
pytestmark = pytest.mark.django_db(databases=["default", "tenants"])


def test_jobs_renew_and_dun_through_the_billing_queue(redis_conn: Any) -> None:
    make_plan("basic", 3000)
    organization = make_organization()
    # One period has elapsed (months are 28 to 31 days); both invoices are overdue by at least five days.
    started = timezone.now() - dt.timedelta(days=50)
    subscription = services.subscription_create(
        organization_id=organization.pk, plan_code="basic", actor=ACTOR, at=started
    )
    queue = django_rq.get_queue(jobs.QUEUE_NAME, commit_mode="auto")  # the test runs inside a transaction
    renew = queue.enqueue(jobs.renewals_job)
    dun = queue.enqueue(jobs.dunning_job)
    again = queue.enqueue(jobs.subscription_renew_job, str(subscription.pk))
    assert SimpleWorker([queue], connection=queue.connection).work(burst=True)

    assert renew.return_value() == {"processed": 1, "invoiced": 1, "failed": 0}
    assert dun.return_value() == {"processed": 2, "advanced": 2, "failed": 0}
    assert again.return_value() == "nothing due"  # idempotent: the period was already renewed
    assert Invoice.objects.filter(billing_reason="subscription_cycle").count() == 1
    assert Subscription.objects.get(pk=subscription.pk).status == "unpaid"
    organization.refresh_from_db()
    assert organization.status == "suspended"


def test_the_worker_schedules_the_billing_cycle() -> None:
    scheduled = {job["func"]: job for job in periodic_jobs()}
    for job in (jobs.usage_readings_job, jobs.renewals_job, jobs.dunning_job):
        assert scheduled[job]["queue_name"] == "billing"
