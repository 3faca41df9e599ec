"""Dunning: overdue invoices move subscriptions to past due, retry, and suspend the tenant after the grace
period; settling the last overdue invoice reverses it."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.http import HttpRequest

from billing.emails import billing_email_send
from billing.models import Customer, Invoice, Subscription
from billing.services.common import RunSummary, clean_save, invoice_email_context, invoice_lock, now_or
from billing.services.mrr import subscription_saving
from billing.stripe_client import StripeGateway, after_commit_call, stripe_enabled
from ghostcrm.audit.services import Actor, audit_record, model_snapshot
from ghostcrm.core.errors import ApplicationError, ValidationError
from ghostcrm.core.system_settings import setting_value
from tenants.services import organization_resume, organization_suspend


def _overdue_open(*, customer_id: int, at: dt.datetime, exclude: uuid.UUID | None = None) -> bool:
    query = Invoice.objects.filter(customer_id=customer_id, status=Invoice.Status.OPEN, due_date__lt=at)
    if exclude is not None:
        query = query.exclude(pk=exclude)
    return query.exists()


def invoice_settled_after(
    *, invoice: Invoice, actor: Actor, at: dt.datetime, request: HttpRequest | None = None
) -> None:
    """Once nothing is overdue any more: the subscription is active again and a suspended tenant resumes."""
    if _overdue_open(customer_id=invoice.customer_id, at=at, exclude=invoice.pk):
        return
    if invoice.subscription_id:
        subscription = Subscription.objects.select_for_update().get(pk=invoice.subscription_id)
        if subscription.status in (Subscription.Status.PAST_DUE, Subscription.Status.UNPAID):
            with subscription_saving(
                subscription,
                action="billing.subscription.active",
                actor=actor,
                at=at,
                request=request,
                message=f"invoice {invoice} settled",
            ):
                subscription.status, subscription.past_due_since = Subscription.Status.ACTIVE, None
    customer = Customer.objects.select_for_update().get(pk=invoice.customer_id)
    if customer.suspended_for_nonpayment:
        organization_resume(organization_id=customer.organization_id, actor=actor, reason=f"Invoice {invoice} settled.")
        customer.suspended_for_nonpayment = False
        customer.save(update_fields=["suspended_for_nonpayment"])
        audit_record(
            request=request,
            action="billing.dunning.resume",
            actor=actor,
            target=customer,
            organization_id=customer.organization_id,
            message=f"invoice {invoice} settled",
        )
        billing_email_send(customer=customer, kind="service_resumed", context=invoice_email_context(invoice))


def dunning_schedule() -> tuple[list[int], int]:
    """(retry days, grace days) from the system settings, which the admin validates when they are saved.

    A value stored some other way and invalid stops dunning with a sentence rather than a traceback.
    """
    try:
        retry_days = setting_value("billing.dunning_retry_days")
        grace_days = setting_value("billing.dunning_grace_days")
    except DjangoValidationError as exc:
        raise ValidationError(
            f"Dunning is stopped: the stored setting is invalid ({' '.join(exc.messages)}). Correct it in System "
            "settings.",
            code="invalid_setting",
        ) from None
    return list(retry_days), int(grace_days)


@transaction.atomic
def invoice_dunning_step(*, invoice_id: uuid.UUID | str, actor: Actor, at: dt.datetime | None = None) -> list[str]:
    """Advance dunning for one overdue invoice; returns the steps taken (empty when nothing was due).

    1. first seen overdue: the subscription becomes ``past_due``; 2. on each retry day of the schedule
    (days after the due date) one collection attempt (Stripe, when configured) and a reminder; 3. after the
    grace period the subscription becomes ``unpaid`` and the tenant is suspended through provisioning.
    """
    at = now_or(at)
    invoice = invoice_lock(invoice_id)
    if invoice.status != Invoice.Status.OPEN or invoice.amount_remaining == 0 or not invoice.due_date:
        return []
    if invoice.due_date >= at:
        return []
    retry_days, grace_days = dunning_schedule()
    days_overdue = (at - invoice.due_date).total_seconds() / 86400
    # Lock order everywhere: invoice, subscription, customer (renewal and payment take the same order).
    subscription = (
        Subscription.objects.select_for_update().filter(pk=invoice.subscription_id).first()
        if invoice.subscription_id
        else None
    )
    customer = Customer.objects.select_for_update().get(pk=invoice.customer_id)
    steps: list[str] = []
    context = invoice_email_context(invoice)

    if subscription is not None and subscription.status in (Subscription.Status.ACTIVE, Subscription.Status.TRIALING):
        with subscription_saving(
            subscription,
            action="billing.dunning.past_due",
            actor=actor,
            at=at,
            message=f"invoice {invoice} overdue since {invoice.due_date:%Y-%m-%d}",
        ):
            subscription.status, subscription.past_due_since = Subscription.Status.PAST_DUE, at
        billing_email_send(customer=customer, kind="payment_overdue", context=context)
        steps.append("past_due")

    attempts_due = sum(1 for day in retry_days if days_overdue >= day)
    if attempts_due > invoice.attempt_count:
        before = model_snapshot(invoice)
        invoice.attempt_count = attempts_due
        later = [day for day in retry_days if day > days_overdue]
        invoice.next_payment_attempt = invoice.due_date + dt.timedelta(days=later[0]) if later else None
        clean_save(invoice)
        charged = bool(stripe_enabled() and invoice.provider_id)
        if charged:
            provider_id, attempt, local_id = str(invoice.provider_id), invoice.attempt_count, invoice.pk
            after_commit_call(
                f"dunning retry of {invoice}",
                lambda: StripeGateway().invoice_pay(
                    provider_invoice_id=provider_id, invoice_id=local_id, attempt=attempt
                ),
            )
        audit_record(
            action="billing.dunning.retry",
            actor=actor,
            target=invoice,
            before=before,
            after=model_snapshot(invoice),
            message=f"attempt {invoice.attempt_count} of {len(retry_days)}"
            + (" (Stripe charge requested)" if charged else " (reminder sent)"),
        )
        billing_email_send(
            customer=customer, kind="payment_retry", context={**context, "attempt": invoice.attempt_count}
        )
        steps.append(f"retry_{invoice.attempt_count}")

    if days_overdue >= grace_days and not customer.suspended_for_nonpayment:
        if subscription is not None and subscription.status == Subscription.Status.PAST_DUE:
            with subscription_saving(subscription, action="billing.dunning.unpaid", actor=actor, at=at):
                subscription.status = Subscription.Status.UNPAID
        organization = customer.organization
        if organization.status == "active":
            organization_suspend(
                organization_id=organization.pk,
                actor=actor,
                reason=f"Invoice {invoice} unpaid {grace_days} days after its due date.",
            )
            customer.suspended_for_nonpayment = True
            customer.save(update_fields=["suspended_for_nonpayment"])
            audit_record(
                action="billing.dunning.suspend",
                actor=actor,
                target=customer,
                organization_id=organization.pk,
                message=f"invoice {invoice} unpaid after {grace_days} days of grace",
            )
            billing_email_send(customer=customer, kind="service_suspended", context=context)
            steps.append("suspended")
        else:
            audit_record(
                action="billing.dunning.suspend",
                actor=actor,
                target=customer,
                organization_id=organization.pk,
                outcome="failure",
                message=f"organisation is {organization.status}, not active: left as it is",
            )
    return steps


def dunning_due(*, at: dt.datetime) -> list[uuid.UUID]:
    """Open invoices past their due date, oldest first: the ones a dunning run looks at."""
    overdue = Invoice.objects.filter(status=Invoice.Status.OPEN, due_date__lt=at).order_by("due_date")
    return list(overdue.values_list("pk", flat=True))


def dunning_run(*, actor: Actor, at: dt.datetime | None = None, progress: Any = None) -> RunSummary:
    at = now_or(at)
    summary = RunSummary()
    for invoice_id in dunning_due(at=at):
        summary.processed += 1
        try:
            if invoice_dunning_step(invoice_id=invoice_id, actor=actor, at=at):
                summary.changed += 1
        except ApplicationError as exc:
            summary.failed += 1
            summary.errors.append(f"invoice {invoice_id}: {exc.message}")
        if progress is not None:
            progress(invoice_id)
    return summary
