"""Subscriptions: start, change plan or seats (with prorations), cancel, and follow the provider's state."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from billing import selectors
from billing.models import Customer, Invoice, InvoiceLine, Plan, Subscription
from billing.pricing import add_months, interval_months
from billing.services.common import clean_save, now_or
from billing.services.customers import customer_ensure
from billing.services.invoices import invoice_finalize, period_invoice_create, subscription_line_add
from billing.services.mrr import mrr_movement_record, subscription_saving
from ghostcrm.audit.services import Actor, audit_record, model_snapshot
from ghostcrm.core.errors import Conflict, NotFound, ValidationError


@transaction.atomic
def subscription_create(
    *,
    organization_id: uuid.UUID | str,
    plan_code: str,
    actor: Actor,
    seats: int = 1,
    at: dt.datetime | None = None,
    billing_email: str | None = None,
    trial_days: int | None = None,
    request: HttpRequest | None = None,
) -> Subscription:
    """Subscribe an organisation to a plan: a trial when the plan (or ``trial_days``) gives one, else the
    first period is invoiced and finalised at once (Stripe's ``subscription_create`` invoice)."""
    at = now_or(at)
    plan = selectors.plan_get(code=plan_code)
    if not plan.active:
        raise ValidationError(f"The plan {plan.code!r} is not offered any more.", code="plan_inactive")
    customer = customer_ensure(request=request, organization_id=organization_id, actor=actor, email=billing_email)
    customer = Customer.objects.select_for_update().get(pk=customer.pk)
    if customer.subscriptions.filter(status__in=Subscription.LIVE_STATUSES).exists():
        raise Conflict(
            f"{customer} already has a current subscription; change its plan instead.", code="subscription_exists"
        )
    selectors.seats_validate(plan=plan, seats=seats, organization_id=customer.organization_id)
    trial = plan.trial_days if trial_days is None else trial_days
    subscription = Subscription(customer=customer, plan=plan, seats=seats, billing_cycle_anchor=at)
    if trial > 0:
        trial_end = at + dt.timedelta(days=trial)
        subscription.status = Subscription.Status.TRIALING
        subscription.trial_end = subscription.billing_cycle_anchor = trial_end
        subscription.current_period_start, subscription.current_period_end = at, trial_end
    else:
        subscription.status = Subscription.Status.ACTIVE
        subscription.started_at = at
        subscription.current_period_start = at
        subscription.current_period_end = add_months(at, interval_months(plan.interval))
    clean_save(subscription)
    mrr_movement_record(subscription, 0, at)
    audit_record(
        request=request,
        action="billing.subscription.create",
        actor=actor,
        target=subscription,
        after=model_snapshot(subscription),
    )
    if subscription.status == Subscription.Status.ACTIVE:
        invoice = period_invoice_create(
            request=request,
            subscription=subscription,
            reason=Invoice.Reason.SUBSCRIPTION_CREATE,
            start=subscription.current_period_start,
            end=subscription.current_period_end,
            actor=actor,
        )
        invoice_finalize(request=request, invoice_id=invoice.pk, actor=actor, at=at)
    return subscription


@dataclass
class ChangeResult:
    subscription: Subscription
    invoice: Invoice | None
    pending_items: list[InvoiceLine] = field(default_factory=list)


PREVIEW_VALID_FOR = dt.timedelta(hours=1)


def proration_date_check(proration_date: dt.datetime, *, now: dt.datetime) -> dt.datetime:
    """``proration_date`` when it is a valid moment to prorate a confirmed preview at, ``now`` being now."""
    if timezone.is_naive(proration_date):
        raise ValidationError(
            "The preview's time is not valid (it has no time zone); preview the change again.", code="preview_invalid"
        )
    if not now - PREVIEW_VALID_FOR <= proration_date <= now:
        raise ValidationError(
            "The preview is more than an hour old (or in the future); preview the change again.",
            code="preview_expired",
        )
    return proration_date


@transaction.atomic
def subscription_change(
    *,
    subscription_id: uuid.UUID | str,
    actor: Actor,
    plan_code: str | None = None,
    seats: int | None = None,
    proration_behavior: str = Subscription.ProrationBehavior.CREATE_PRORATIONS,
    proration_date: dt.datetime | None = None,
    at: dt.datetime | None = None,
    request: HttpRequest | None = None,
) -> ChangeResult:
    """Change plan and/or seats with Stripe's proration behaviours (see ``selectors.subscription_change_plan``).

    ``proration_date`` (Stripe's name): the moment a preview was made; the change then prorates at that moment,
    so the invoice issued is the one previewed. It must be at most ``PREVIEW_VALID_FOR`` old and not in the
    future (``preview_expired``); without it the change prorates now (``at``).
    """
    at = now_or(at)
    if proration_date is not None:
        at = proration_date_check(proration_date, now=at)
    locked = Subscription.objects.select_for_update().filter(pk=subscription_id).first()
    if locked is None:
        raise NotFound(f"There is no subscription {subscription_id}.", code="subscription_not_found")
    subscription = selectors.subscription_get(subscription_id=locked.pk)
    change = selectors.subscription_change_plan(
        subscription=subscription, plan_code=plan_code, seats=seats, proration_behavior=proration_behavior, at=at
    )
    with subscription_saving(
        subscription,
        action="billing.subscription.change",
        actor=actor,
        at=at,
        request=request,
        message=f"proration: {proration_behavior}",
    ):
        subscription.plan, subscription.seats = change.new_plan, change.new_seats
        if change.resets_cycle:
            subscription.billing_cycle_anchor = change.new_period_start
            subscription.current_period_start, subscription.current_period_end = (
                change.new_period_start,
                change.new_period_end,
            )
    customer = subscription.customer
    lines = [
        InvoiceLine(
            subscription=subscription,
            kind=line.kind,
            description=line.description,
            plan_id=line.plan_id,
            quantity=line.quantity,
            amount=line.amount,
            currency=change.new_plan.currency,
            period_start=line.period_start,
            period_end=line.period_end,
            tax_rate=customer.tax_rate,
            tax_amount=line.tax_amount,
        )
        for line in change.proration_lines
    ]
    for line in lines:
        clean_save(line)
    if change.preview.invoice_now:
        invoice = Invoice(
            customer=customer,
            subscription=subscription,
            currency=change.new_plan.currency,
            billing_reason=Invoice.Reason.SUBSCRIPTION_UPDATE,
            period_start=change.preview.period_start,
            period_end=change.preview.period_end,
        )
        clean_save(invoice)
        InvoiceLine.objects.filter(subscription=subscription, invoice__isnull=True).update(invoice=invoice)
        if change.resets_cycle:
            subscription_line_add(
                invoice=invoice,
                subscription=subscription,
                seats=change.new_seats,
                start=change.new_period_start,
                end=change.new_period_end,
            )
        invoice = invoice_finalize(request=request, invoice_id=invoice.pk, actor=actor, at=at)
        return ChangeResult(subscription, invoice)
    return ChangeResult(subscription, None, lines)


@transaction.atomic
def subscription_cancel(
    *,
    subscription_id: uuid.UUID | str,
    actor: Actor,
    at_period_end: bool = True,
    at: dt.datetime | None = None,
    request: HttpRequest | None = None,
) -> Subscription:
    """Cancel at the end of the period (the renewal then ends it) or immediately."""
    at = now_or(at)
    subscription = Subscription.objects.select_for_update().filter(pk=subscription_id).first()
    if subscription is None:
        raise NotFound(f"There is no subscription {subscription_id}.", code="subscription_not_found")
    if subscription.status == Subscription.Status.CANCELED:
        raise Conflict("The subscription is already canceled.", code="already_canceled")
    with subscription_saving(
        subscription,
        action="billing.subscription.cancel",
        actor=actor,
        at=at,
        request=request,
        message="at period end" if at_period_end else "immediately",
    ):
        if at_period_end:
            subscription.cancel_at_period_end = True
        else:
            subscription.status = Subscription.Status.CANCELED
            subscription.canceled_at = subscription.ended_at = at
        subscription.canceled_at = subscription.canceled_at or at
    return subscription


@dataclass(frozen=True)
class ProviderSubscriptionState:
    """What a provider (Stripe) reports about a subscription in one event; ``None``: not reported."""

    provider_id: str | None
    event_created: int  # the event's `created` (Unix seconds): older events than the last applied are stale
    status: str
    period_start: dt.datetime | None
    period_end: dt.datetime | None
    cancel_at_period_end: bool | None
    seats: int | None
    price_id: str | None
    ended_at: dt.datetime | None
    canceled_at: dt.datetime | None


@transaction.atomic
def subscription_provider_sync(
    *, subscription_id: uuid.UUID | str, state: ProviderSubscriptionState, actor: Actor, message: str = ""
) -> Subscription:
    """Make the subscription what the provider says it is (status, period, seats, plan by price id).

    Raises ``Conflict`` (code ``stale_event``) for an event older than the last one applied, so a late
    delivery never undoes a newer state; an unknown price id or one in another currency is refused.
    """
    subscription = Subscription.objects.select_for_update().filter(pk=subscription_id).first()
    if subscription is None:
        raise NotFound(f"There is no subscription {subscription_id}.", code="subscription_not_found")
    if subscription.provider_updated is not None and state.event_created < subscription.provider_updated:
        raise Conflict(f"stale: an event of {subscription.provider_updated} was already applied", code="stale_event")
    occurred = dt.datetime.fromtimestamp(state.event_created, tz=dt.UTC)
    with subscription_saving(
        subscription, action="billing.subscription.sync", actor=actor, at=occurred, message=message
    ):
        subscription.status = state.status
        subscription.provider_id = subscription.provider_id or state.provider_id
        subscription.provider_updated = state.event_created
        if state.period_start and state.period_end:
            subscription.current_period_start, subscription.current_period_end = state.period_start, state.period_end
        if state.cancel_at_period_end is not None:
            subscription.cancel_at_period_end = state.cancel_at_period_end
        if state.seats:
            subscription.seats = state.seats
        if state.price_id and state.price_id != subscription.plan.provider_id:
            # A plan changed at the provider: follow it, so MRR and the next invoice here use the same price.
            plan = Plan.objects.filter(provider_id=state.price_id).first()
            if plan is None:
                raise ValidationError(
                    f"No plan here has the Stripe price id {state.price_id!r}; set it on the plan, then replay "
                    "this event.",
                    code="unknown_price",
                )
            if plan.currency != subscription.plan.currency:
                raise ValidationError(
                    f"The Stripe price {state.price_id} is in {plan.currency}, the subscription in "
                    f"{subscription.plan.currency}.",
                    code="currency_mismatch",
                )
            subscription.plan = plan
        if state.status == Subscription.Status.CANCELED:
            subscription.ended_at = state.ended_at
            subscription.canceled_at = subscription.canceled_at or state.canceled_at or subscription.ended_at
    return subscription
