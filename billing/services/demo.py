"""``make demo``'s billing: a small catalogue (with ``starter``, the plan the README's first API example sends)
and a few months of subscriptions, invoices and payments, so that the billing pages and the revenue dashboard
have something to show. Everything goes through the ordinary services, and a second run adds nothing."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from billing.models import Customer, Interval, Invoice, Payment, Plan, Product, Subscription
from billing.pricing import add_months
from billing.services.common import clean_save
from billing.services.invoices import LineInput, invoice_draft_create
from billing.services.payments import payment_record
from billing.services.renewals import subscription_renew
from billing.services.subscriptions import subscription_change, subscription_create
from ghostcrm.audit.services import Actor


@dataclass(frozen=True)
class DemoPlan:
    code: str
    name: str
    scheme: str
    interval: str
    unit_amount: int  # minor units, EUR
    seat_limit: int | None
    contact_limit: int | None
    trial_days: int = 0


DEMO_PLANS = (
    DemoPlan("starter", "Starter", Plan.Scheme.FLAT, Interval.MONTH, 2_900, 5, 2_000, trial_days=14),
    DemoPlan("team", "Team", Plan.Scheme.PER_SEAT, Interval.MONTH, 1_200, 50, 50_000),
    DemoPlan("business", "Business", Plan.Scheme.FLAT, Interval.YEAR, 240_000, None, None),
)


def demo_catalogue_seed() -> list[Plan]:
    """The demo's product and plans, created when missing (an existing plan is left as it is)."""
    product, _ = Product.objects.get_or_create(name="GhostCRM")
    plans = []
    for spec in DEMO_PLANS:
        plan = Plan.objects.filter(code=spec.code).first()
        if plan is None:
            plan = Plan(
                code=spec.code,
                name=spec.name,
                product=product,
                currency="EUR",
                interval=spec.interval,
                scheme=spec.scheme,
                unit_amount=spec.unit_amount,
                trial_days=spec.trial_days,
                seat_limit=spec.seat_limit,
                contact_limit=spec.contact_limit,
            )
            clean_save(plan)
        plans.append(plan)
    return plans


def _settle_past_invoices(*, customer: Customer, actor: Actor, now: dt.datetime) -> None:
    """Pay every invoice of the history that is already due, a day after it was issued; the current period's
    stays open (not yet due), so dunning leaves the demo organisations alone."""
    due = Invoice.objects.filter(customer=customer, status=Invoice.Status.OPEN, due_date__lte=now)
    for invoice in due.order_by("finalized_at"):
        paid_at = min((invoice.finalized_at or now) + dt.timedelta(days=1), now)
        payment_record(
            invoice_id=invoice.pk,
            amount=invoice.amount_remaining,
            method=Payment.Method.BANK_TRANSFER,
            actor=actor,
            at=paid_at,
        )


@dataclass(frozen=True)
class DemoStory:
    """One demo organisation's billing: a plan and seats since some months, and maybe a move a month later."""

    plan_code: str
    seats: int
    months_ago: int
    moves_to: tuple[str, int] | None = None  # (plan, seats) a month and three days after it started


DEMO_STORIES = (
    DemoStory("team", 8, 5),
    DemoStory("starter", 1, 3, moves_to=("team", 3)),
    DemoStory("business", 1, 1),
)
DAY = dt.timedelta(days=1)


def _moves_at(start: dt.datetime) -> dt.datetime:
    return add_months(start, 1) + dt.timedelta(days=3)


@transaction.atomic
def demo_history_seed(*, organization_ids: Sequence[uuid.UUID], actor: Actor) -> int:
    """Subscriptions started some months ago (one upgraded since), their invoices and payments, and one one-off
    draft left to finalise. An organisation that already has a billing customer is skipped; returns how many
    were seeded.

    The history is played a day at a time from its first day, every subscription renewed at each step, so the
    invoices are numbered in the order of their dates, as they would have been."""
    now = timezone.now()
    stories = [
        (organization_id, story, add_months(now, -story.months_ago))
        for organization_id, story in zip(organization_ids, DEMO_STORIES, strict=False)
        if not Customer.objects.filter(organization_id=organization_id).exists()
    ]
    if not stories:
        return 0
    subscriptions: list[uuid.UUID] = []
    moment = min(start for _, _, start in stories)
    while moment <= now:
        due = Subscription.objects.filter(pk__in=subscriptions, current_period_end__lte=moment).order_by(
            "current_period_end"
        )
        for subscription_id in due.values_list("pk", flat=True):
            subscription_renew(subscription_id=subscription_id, actor=actor, at=moment)
        for organization_id, story, start in stories:
            if start == moment:
                subscriptions.append(
                    subscription_create(
                        organization_id=organization_id,
                        plan_code=story.plan_code,
                        seats=story.seats,
                        trial_days=0,
                        actor=actor,
                        at=start,
                    ).pk
                )
            elif story.moves_to is not None and _moves_at(start) == moment:
                subscription_change(
                    subscription_id=Subscription.objects.get(customer__organization_id=organization_id).pk,
                    plan_code=story.moves_to[0],
                    seats=story.moves_to[1],
                    proration_behavior=Subscription.ProrationBehavior.ALWAYS_INVOICE,
                    actor=actor,
                    at=moment,
                )
        moment += DAY
    for subscription_id in subscriptions:
        subscription_renew(subscription_id=subscription_id, actor=actor, at=now)
    for organization_id, _, _ in stories:
        _settle_past_invoices(customer=Customer.objects.get(organization_id=organization_id), actor=actor, now=now)
    invoice_draft_create(
        organization_id=stories[-1][0],
        currency=None,
        lines=[LineInput(description="Onboarding workshop (half a day)", amount="450.00")],
        memo="Demo: a draft to finalise from its page.",
        actor=actor,
    )
    return len(stories)
