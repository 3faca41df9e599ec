"""Revenue: MRR and ARR, movements per month, subscriptions per state, past due and top accounts."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from dataclasses import dataclass

from django.db.models import Sum
from django.utils import timezone

from billing.models import (
    Invoice,
    MrrMovement,
    Plan,
    Subscription,
)
from billing.pricing import (
    add_months,
)
from billing.selectors.plans import subscription_mrr


@dataclass
class MonthRow:
    month: str  # YYYY-MM
    new: int
    expansion: int
    contraction: int  # <= 0
    churn: int  # <= 0
    reactivation: int
    mrr_end: int  # MRR at the end of the month (the ledger's running sum)


@dataclass
class RevenueSummary:
    currency: str
    currencies: list[str]
    at: dt.datetime
    mrr: int
    arr: int
    months: list[MonthRow]
    by_status: dict[str, int]
    past_due_amount: int
    past_due_count: int
    top_accounts: list[tuple[str, int]]
    active_subscriptions: int


def _month_key(moment: dt.datetime) -> str:
    return f"{moment.year:04d}-{moment.month:02d}"


def revenue_currencies() -> list[str]:
    return sorted(set(Plan.objects.values_list("currency", flat=True).distinct()))


def revenue_summary(*, currency: str | None = None, at: dt.datetime | None = None, months: int = 12) -> RevenueSummary:
    """Dashboard figures in one currency (amounts in different currencies are never added together).

    MRR and per-account MRR come from the live subscriptions; the monthly new/expansion/contraction/churn
    series comes from the ``MrrMovement`` ledger, whose running sum is the MRR at each month's end.
    """
    at = at or timezone.now()
    currencies = revenue_currencies()
    if currency is None:
        currency = currencies[0] if currencies else "EUR"
    currency = currency.upper()
    subscriptions = list(
        Subscription.objects.select_related("plan", "customer")
        .prefetch_related("plan__tiers")  # tiered prices: one query, not one per subscription
        .filter(plan__currency=currency)
        .order_by("created_at")
    )
    mrr_by_customer: dict[int, int] = defaultdict(int)
    names: dict[int, str] = {}
    mrr = 0
    for subscription in subscriptions:
        value = subscription_mrr(subscription)
        mrr += value
        if value:  # keyed by customer, so two customers with the same name stay two accounts
            mrr_by_customer[subscription.customer_id] += value
            names[subscription.customer_id] = str(subscription.customer)
    by_status = Counter(s.status for s in subscriptions)

    first_month = add_months(at.replace(day=1, hour=0, minute=0, second=0, microsecond=0), -(months - 1))
    movements = MrrMovement.objects.filter(currency=currency, occurred_at__lte=at).order_by("occurred_at", "id")
    opening = movements.filter(occurred_at__lt=first_month).aggregate(total=Sum("delta"))["total"] or 0
    rows: dict[str, MonthRow] = {}
    for i in range(months):
        key = _month_key(add_months(first_month, i))
        rows[key] = MonthRow(key, 0, 0, 0, 0, 0, 0)
    for movement in movements.filter(occurred_at__gte=first_month):
        row = rows[_month_key(movement.occurred_at)]
        setattr(row, movement.kind, getattr(row, movement.kind) + movement.delta)
    running = opening
    for row in rows.values():
        running += row.new + row.expansion + row.contraction + row.churn + row.reactivation
        row.mrr_end = running

    overdue = list(Invoice.objects.filter(currency=currency, status=Invoice.Status.OPEN, due_date__lt=at))
    past_due_amount = sum(invoice.amount_remaining for invoice in overdue)
    top = sorted(((names[pk], value) for pk, value in mrr_by_customer.items()), key=lambda item: (-item[1], item[0]))
    top = top[:10]
    return RevenueSummary(
        currency=currency,
        currencies=currencies,
        at=at,
        mrr=mrr,
        arr=mrr * 12,
        months=list(rows.values()),
        by_status={status: by_status.get(status, 0) for status in Subscription.Status.values},
        past_due_amount=past_due_amount,
        past_due_count=len(overdue),
        top_accounts=top,
        active_subscriptions=sum(1 for s in subscriptions if s.status in Subscription.MRR_STATUSES),
    )
