"""MRR, ARR, movements per month, states, past-due amount and top accounts against a hand-computed fixture."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest

from billing import selectors, services
from billing.models import Invoice
from tests.billing.factories import ACTOR, make_organization, make_plan

pytestmark = pytest.mark.django_db
UTC = dt.UTC
AT = dt.datetime(2026, 3, 15, tzinfo=UTC)


def d(month: int, day: int) -> dt.datetime:
    return dt.datetime(2026, month, day, tzinfo=UTC)


@pytest.fixture
def book(db: Any) -> dict[str, Any]:
    """Five customers in EUR (and one in USD that must never be added to them).

    Alpha  basic 30.00/month from 1 Jan; first invoice unpaid, past due since 16 Jan (still MRR).
    Bravo  pro 90.00/month from 10 Jan, canceled on 20 Feb (churn); its invoice stays open and overdue.
    Charly yearly 1,200.00 from 5 Feb: 100.00 MRR; paid.
    Delta  4 seats x 10.00 from 1 Feb, 6 seats from 1 Mar (expansion 20.00); paid.
    Echo   trialing: no MRR.
    """
    make_plan("basic", 3000)
    make_plan("pro", 9000)
    make_plan("yearly", 120000, interval="year")
    make_plan("seat", 1000, scheme="per_seat")
    make_plan("trial", 5000, trial_days=30)
    make_plan("usd-basic", 4900, currency="USD")
    orgs = {name: make_organization(name=name) for name in ("Alpha", "Bravo", "Charly", "Delta", "Echo", "Foxtrot")}

    def sub(name: str, code: str, at: dt.datetime, seats: int = 1) -> Any:
        return services.subscription_create(
            organization_id=orgs[name].pk, plan_code=code, seats=seats, actor=ACTOR, at=at
        )

    alpha = sub("Alpha", "basic", d(1, 1))
    services.invoice_dunning_step(invoice_id=Invoice.objects.get(subscription=alpha).pk, actor=ACTOR, at=d(1, 16))
    bravo = sub("Bravo", "pro", d(1, 10))
    services.subscription_cancel(subscription_id=bravo.pk, at_period_end=False, actor=ACTOR, at=d(2, 20))
    charly = sub("Charly", "yearly", d(2, 5))
    delta = sub("Delta", "seat", d(2, 1), seats=4)
    services.subscription_change(subscription_id=delta.pk, seats=6, proration_behavior="none", actor=ACTOR, at=d(3, 1))
    for paid in (charly, delta):
        services.invoice_mark_paid(invoice_id=Invoice.objects.get(subscription=paid).pk, actor=ACTOR, at=d(3, 1))
    sub("Echo", "trial", d(3, 1))
    sub("Foxtrot", "usd-basic", d(2, 1))
    return orgs


def test_mrr_figures_match_the_hand_computed_book(book: dict[str, Any]) -> None:
    summary = selectors.revenue_summary(currency="EUR", at=AT, months=3)
    assert summary.mrr == 3000 + 10000 + 6000 == 19000
    assert summary.arr == 228000
    assert summary.currencies == ["EUR", "USD"]
    months = {row.month: row for row in summary.months}
    assert list(months) == ["2026-01", "2026-02", "2026-03"]
    assert (months["2026-01"].new, months["2026-01"].churn, months["2026-01"].mrr_end) == (12000, 0, 12000)
    assert (months["2026-02"].new, months["2026-02"].churn, months["2026-02"].mrr_end) == (14000, -9000, 17000)
    assert (months["2026-03"].new, months["2026-03"].expansion, months["2026-03"].mrr_end) == (0, 2000, 19000)
    assert summary.months[-1].mrr_end == summary.mrr  # the ledger and the live subscriptions agree
    assert summary.by_status == {
        "trialing": 1, "active": 2, "past_due": 1, "canceled": 1, "unpaid": 0, "incomplete": 0, "paused": 0
    }  # fmt: skip
    assert (summary.past_due_amount, summary.past_due_count) == (3000 + 9000, 2)
    assert summary.top_accounts == [("Charly", 10000), ("Delta", 6000), ("Alpha", 3000)]

    usd = selectors.revenue_summary(currency="USD", at=AT, months=3)
    assert (usd.mrr, usd.arr, usd.top_accounts) == (4900, 58800, [("Foxtrot", 4900)])


def test_the_dashboard_shows_figures_and_charts(admin_session: Any, book: dict[str, Any]) -> None:
    index = admin_session.get("/admin/")
    assert "/admin/billing/revenuedashboard/" in index.content.decode()
    page = admin_session.get("/admin/billing/revenuedashboard/?currency=EUR")
    assert page.status_code == 200
    html = page.content.decode()
    # Today is after the book's dates: the live figures are the same as at AT.
    assert 'id="kpi-mrr">190.00 EUR<' in html
    assert 'id="kpi-arr">2\u202f280.00 EUR<' in html
    assert 'id="kpi-past-due">120.00 EUR<' in html
    assert html.count('<svg class="gc-chart"') == 4
    assert "Charly: 100.00 EUR" in html  # a bar of the top-accounts chart
    assert not re.search(r'<(script|link)[^>]+(src|href)="(https?:)?//', html)  # nothing from another host
    usd = admin_session.get("/admin/billing/revenuedashboard/?currency=usd").content.decode()
    assert 'id="kpi-mrr">49.00 USD<' in usd
    assert admin_session.get("/admin/billing/revenuedashboard/?currency=nope").status_code == 200


def test_mrr_of_yearly_per_seat_and_tiered_plans_by_hand(db: Any, django_assert_max_num_queries: Any) -> None:
    """Yearly per seat: 3 x 99.99 = 299.97 a year, 24.9975 a month -> 25.00 (half-even at line level: .75 up).
    Yearly flat 1.26 a year: 0.105 a month -> 0.10 (a tie, to even). Graduated monthly, 7 seats with tiers
    up to 5 at 10.00 and then 8.00: 50.00 + 16.00 = 66.00. Two customers named alike stay two accounts."""
    make_plan("seat-year", 9_999, scheme="per_seat", interval="year")
    make_plan("tiny-year", 126, interval="year")
    make_plan("grad", 0, scheme="tiered", tiers_mode="graduated", tiers=[(5, 1000, 0), (None, 800, 0)])
    for code, seats in (("seat-year", 3), ("tiny-year", 1), ("grad", 7)):
        services.subscription_create(
            organization_id=make_organization(name="Same name").pk, plan_code=code, seats=seats, actor=ACTOR
        )
    with django_assert_max_num_queries(6):  # plans, subscriptions, tiers, ledger x2, overdue: none per row
        summary = selectors.revenue_summary(currency="EUR", months=1)
    assert summary.mrr == 2_500 + 10 + 6_600 == 9_110
    assert summary.arr == 109_320
    assert summary.top_accounts == [("Same name", 6_600), ("Same name", 2_500), ("Same name", 10)]
