"""Renewals: roll elapsed periods forward and invoice each new period, once."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from django.db import IntegrityError, transaction
from django.http import HttpRequest

from billing import selectors
from billing.models import Invoice, Subscription
from billing.pricing import add_months, interval_months
from billing.services.common import RunSummary, now_or
from billing.services.invoices import invoice_finalize, period_invoice_create
from billing.services.mrr import subscription_saving
from ghostcrm.audit.services import Actor, audit_record
from ghostcrm.core.errors import ApplicationError

# --- Renewal -----------------------------------------------------------------------------------------

# Canceled and incomplete subscriptions have no next period; paused ones are not invoiced (as in Stripe).
NOT_RENEWED = (Subscription.Status.CANCELED, Subscription.Status.INCOMPLETE, Subscription.Status.PAUSED)


def subscription_renew(
    *, subscription_id: uuid.UUID | str, actor: Actor, at: dt.datetime | None = None, request: HttpRequest | None = None
) -> Invoice | None:
    """Roll every elapsed period forward: end a subscription set to cancel, turn a finished trial into a
    paying subscription, and create and finalise the invoice of each new period.

    Idempotent: a period's invoice is unique on (subscription, period_start), and the subscription row is
    locked while it moves, so running twice (or two workers at once) makes one invoice per period.
    Returns the last invoice created, if any.
    """
    at = now_or(at)
    last: Invoice | None = None
    for _ in range(240):  # a bound: 20 years of monthly periods caught up in one call at most
        with transaction.atomic():
            subscription = (
                Subscription.objects.select_for_update()
                .filter(pk=subscription_id, current_period_end__lte=at)
                .exclude(status__in=NOT_RENEWED)
                .first()
            )
            if subscription is None:
                return last
            last = (
                _renew_one_period(
                    request=request,
                    subscription=selectors.subscription_get(subscription_id=subscription.pk),
                    actor=actor,
                )
                or last
            )
    return last


def _renew_one_period(
    *, subscription: Subscription, actor: Actor, request: HttpRequest | None = None
) -> Invoice | None:
    boundary = subscription.current_period_end
    if subscription.cancel_at_period_end:
        with subscription_saving(
            subscription, action="billing.subscription.end", actor=actor, at=boundary, request=request
        ):
            subscription.status, subscription.ended_at = Subscription.Status.CANCELED, boundary
        return None
    start = boundary
    end = add_months(start, interval_months(subscription.plan.interval))
    with subscription_saving(
        subscription, action="billing.subscription.renew", actor=actor, at=boundary, request=request
    ):
        if subscription.status == Subscription.Status.TRIALING:
            subscription.status, subscription.started_at = Subscription.Status.ACTIVE, boundary
            subscription.billing_cycle_anchor = boundary
        seats = selectors.billable_seats(subscription)
        if seats > subscription.seats:  # usage above the committed seats: bill the reading, commit to it
            subscription.seats = seats
        subscription.current_period_start, subscription.current_period_end = start, end
    reason = Invoice.Reason.SUBSCRIPTION_CYCLE
    existing = Invoice.objects.filter(
        subscription=subscription, period_start=start, billing_reason__in=Invoice.PERIOD_REASONS
    ).first()
    if existing is not None:
        return existing
    try:
        invoice = period_invoice_create(
            request=request, subscription=subscription, reason=reason, start=start, end=end, actor=actor, seats=seats
        )
    except IntegrityError:
        return Invoice.objects.get(
            subscription=subscription, period_start=start, billing_reason__in=Invoice.PERIOD_REASONS
        )
    return invoice_finalize(request=request, invoice_id=invoice.pk, actor=actor, at=boundary)


def renewals_due(*, at: dt.datetime) -> list[uuid.UUID]:
    return list(
        Subscription.objects.filter(current_period_end__lte=at)
        .exclude(status__in=NOT_RENEWED)
        .order_by("current_period_end")
        .values_list("pk", flat=True)
    )


def renewals_run(*, actor: Actor, at: dt.datetime | None = None, progress: Any = None) -> RunSummary:
    """Renew every subscription whose period has ended; one transaction per period, failures reported."""
    at = now_or(at)
    summary = RunSummary()
    for subscription_id in renewals_due(at=at):
        summary.processed += 1
        try:
            if subscription_renew(subscription_id=subscription_id, actor=actor, at=at) is not None:
                summary.changed += 1
        except ApplicationError as exc:
            summary.failed += 1
            summary.errors.append(f"subscription {subscription_id}: {exc.message}")
            audit_record(
                action="billing.subscription.renew",
                actor=actor,
                target_type="billing.subscription",
                target_id=str(subscription_id),
                outcome="failure",
                message=exc.message,
            )
        if progress is not None:
            progress(subscription_id)
    return summary
