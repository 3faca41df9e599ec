"""Dunning: past due, scheduled retries, suspension of the tenant after the grace period, and resumption."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core import mail
from django.core.exceptions import ValidationError as DjangoValidationError

from billing import services
from billing.models import Customer, Invoice, MrrMovement, Subscription
from ghostcrm.audit.models import AuditEvent
from ghostcrm.core.models import SystemSetting
from tests.billing.factories import ACTOR, T0, make_organization, make_plan

# Suspension goes through provisioning's organization_suspend, which also takes LOGIN from the tenant's role.
pytestmark = pytest.mark.django_db(databases=["default", "tenants"])
DUE = T0 + dt.timedelta(days=14)


def day(days: float) -> dt.datetime:
    return DUE + dt.timedelta(days=days)


@pytest.fixture
def overdue(db):  # type: ignore[no-untyped-def]
    make_plan("basic", 3000)
    organization = make_organization()
    subscription = services.subscription_create(organization_id=organization.pk, plan_code="basic", actor=ACTOR, at=T0)
    invoice = Invoice.objects.get(subscription=subscription)
    assert invoice.due_date == DUE
    return organization, subscription, invoice


def test_dunning_suspends_after_grace_and_payment_resumes(overdue, run_on_commit) -> None:  # type: ignore[no-untyped-def]
    organization, subscription, invoice = overdue
    mail.outbox.clear()
    step = lambda at: run_on_commit(lambda: services.invoice_dunning_step(invoice_id=invoice.pk, actor=ACTOR, at=at))  # noqa: E731

    assert step(day(-1)) == []  # not due yet
    assert step(day(0.5)) == ["past_due"]
    subscription.refresh_from_db()
    assert (subscription.status, subscription.past_due_since) == ("past_due", day(0.5))
    assert step(day(1)) == ["retry_1"]
    assert step(day(1.5)) == []  # nothing new until the next retry day
    invoice.refresh_from_db()
    assert (invoice.attempt_count, invoice.next_payment_attempt) == (1, day(3))
    assert step(day(5)) == ["retry_3"]  # a late run catches up with one reminder, not three
    organization.refresh_from_db()
    assert organization.status == "active"

    assert step(day(7)) == ["suspended"]
    organization.refresh_from_db()
    subscription.refresh_from_db()
    assert organization.status == "suspended"
    assert subscription.status == "unpaid"
    assert Customer.objects.get(organization=organization).suspended_for_nonpayment
    assert step(day(8)) == []  # suspended once

    assert [m.subject for m in mail.outbox] == [
        "Payment overdue: invoice GC-2026-000001",
        "Reminder: invoice GC-2026-000001 is still unpaid",
        "Reminder: invoice GC-2026-000001 is still unpaid",
        "Your GhostCRM service is suspended: invoice GC-2026-000001 unpaid",
    ]
    assert {m.to[0] for m in mail.outbox} == {organization.admin_email}

    mail.outbox.clear()
    run_on_commit(
        lambda: services.invoice_mark_paid(invoice_id=invoice.pk, actor=ACTOR, reference="wire-42", at=day(9))
    )
    organization.refresh_from_db()
    subscription.refresh_from_db()
    invoice.refresh_from_db()
    assert organization.status == "active"
    assert (subscription.status, subscription.past_due_since) == ("active", None)
    assert (invoice.status, invoice.amount_paid, invoice.next_payment_attempt) == ("paid", 3000, None)
    assert not Customer.objects.get(organization=organization).suspended_for_nonpayment
    assert [m.subject for m in mail.outbox] == [
        "Payment received for invoice GC-2026-000001",
        "Your GhostCRM service is active again",
    ]
    actions = list(
        AuditEvent.objects.filter(action__startswith="billing.dunning").order_by("id").values_list("action", flat=True)
    )
    assert actions == [
        "billing.dunning.past_due",
        "billing.dunning.retry",
        "billing.dunning.retry",
        "billing.dunning.unpaid",
        "billing.dunning.suspend",
        "billing.dunning.resume",
    ]
    assert AuditEvent.objects.filter(action="organization.suspend", organization_id=organization.pk).exists()
    assert AuditEvent.objects.filter(action="organization.resume", organization_id=organization.pk).exists()
    kinds = list(MrrMovement.objects.filter(subscription=subscription).values_list("kind", "delta"))
    assert kinds == [("new", 3000), ("churn", -3000), ("reactivation", 3000)]


def test_schedule_and_grace_come_from_system_settings(overdue) -> None:  # type: ignore[no-untyped-def]
    organization, _, invoice = overdue
    SystemSetting.objects.create(key="billing.dunning_retry_days", value="[2]")
    SystemSetting.objects.create(key="billing.dunning_grace_days", value="3")
    summary = services.dunning_run(actor=ACTOR, at=day(1))
    assert (summary.processed, summary.changed) == (1, 1)
    invoice.refresh_from_db()
    assert (invoice.attempt_count, invoice.next_payment_attempt) == (0, None)
    services.dunning_run(actor=ACTOR, at=day(3))
    invoice.refresh_from_db()
    organization.refresh_from_db()
    assert invoice.attempt_count == 1
    assert organization.status == "suspended"


def test_an_organisation_not_active_is_left_alone(overdue) -> None:  # type: ignore[no-untyped-def]
    organization, _, invoice = overdue
    organization.status = "provisioning"
    organization.save(update_fields=["status"])
    steps = services.invoice_dunning_step(invoice_id=invoice.pk, actor=ACTOR, at=day(8))
    assert "suspended" not in steps
    organization.refresh_from_db()
    assert organization.status == "provisioning"
    assert not Customer.objects.get(organization=organization).suspended_for_nonpayment
    event = AuditEvent.objects.get(action="billing.dunning.suspend")
    assert event.outcome == "failure"
    assert "provisioning" in event.message


def test_voiding_the_overdue_invoice_also_resumes(overdue) -> None:  # type: ignore[no-untyped-def]
    organization, subscription, invoice = overdue
    services.invoice_dunning_step(invoice_id=invoice.pk, actor=ACTOR, at=day(8))
    organization.refresh_from_db()
    assert organization.status == "suspended"
    services.invoice_void(invoice_id=invoice.pk, actor=ACTOR, reason="billed by mistake", at=day(9))
    organization.refresh_from_db()
    assert organization.status == "active"
    assert Subscription.objects.get(pk=subscription.pk).status == "active"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("billing.dunning_retry_days", "[3, 1]", "ascending without repeats"),
        ("billing.dunning_retry_days", "[1, 1]", "ascending without repeats"),
        ("billing.dunning_retry_days", "[-1]", "list of whole days"),
        ("billing.dunning_retry_days", "[1.5]", "list of whole days"),
        ("billing.dunning_retry_days", "[true]", "list of whole days"),
        ("billing.dunning_retry_days", '["2"]', "list of whole days"),
        ("billing.dunning_retry_days", "3", "expects"),
        ("billing.dunning_retry_days", "[1, 3", "expects"),
        ("billing.dunning_grace_days", "-1", "at least 0"),
        ("billing.dunning_grace_days", "366", "at most 365"),
        ("billing.dunning_grace_days", "seven", "expects"),
    ],
)
def test_bad_dunning_settings_are_refused(db, key: str, value: str, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DjangoValidationError) as caught:
        SystemSetting(key=key, value=value).full_clean()
    assert message in " ".join(caught.value.messages)


def test_an_invalid_stored_schedule_stops_dunning_with_a_sentence(overdue) -> None:  # type: ignore[no-untyped-def]
    organization, subscription, _ = overdue
    SystemSetting.objects.bulk_create([SystemSetting(key="billing.dunning_retry_days", value="[5, 1]")])  # no clean
    summary = services.dunning_run(actor=ACTOR, at=day(8))
    assert (summary.processed, summary.changed, summary.failed) == (1, 0, 1)
    assert "Dunning is stopped: the stored setting is invalid" in summary.errors[0]
    subscription.refresh_from_db()
    organization.refresh_from_db()
    assert (subscription.status, organization.status) == ("active", "active")  # nothing half-done
