"""The revenue dashboard's charts, drawn by the shared ``ghostcrm.core.charts``: billing chooses the series,
the colours and the labels (months as "Dec 2025", amounts in the summary's currency); it draws nothing itself."""

from __future__ import annotations

import datetime as dt

from django.utils.safestring import SafeString

from billing.money import format_money
from billing.selectors import RevenueSummary
from ghostcrm.core.charts import NEGATIVE, POSITIVE, Series, ValueText, bar_chart, column_chart


def month_label(label: str) -> str:
    """ "2025-12" -> "Dec 2025"; any other label is shown as given."""
    try:
        return dt.datetime.strptime(label, "%Y-%m").strftime("%b %Y")
    except ValueError:
        return label


def money_text(currency: str) -> ValueText:
    return lambda value: format_money(int(value), currency)


def revenue_charts(summary: RevenueSummary) -> dict[str, SafeString]:
    """MRR at each month's end, new (up) and churned (down) MRR per month, subscriptions per state, top
    accounts."""
    money = money_text(summary.currency)
    labels = [month_label(row.month) for row in summary.months]
    gains = [row.new + row.expansion + row.reactivation for row in summary.months]
    losses = [row.churn + row.contraction for row in summary.months]  # zero or negative
    return {
        "mrr_chart": column_chart(
            labels, [Series("MRR", [row.mrr_end for row in summary.months])], title="MRR at month end", value_text=money
        ),
        "movement_chart": column_chart(
            labels,
            [
                Series("new MRR", gains, color=POSITIVE, inset=0.2),
                Series("churned MRR", losses, color=NEGATIVE, inset=0.2),
            ],
            title="New and churned MRR per month",
            value_text=money,
        ),
        "status_chart": bar_chart(list(summary.by_status.items()), title="Subscriptions per state"),
        "top_chart": bar_chart(summary.top_accounts, title="Top accounts by MRR", value_text=money),
    }
