"""Reads of billing, one module per domain: plans and seats, previews, invoices, revenue.

The names are re-exported so that ``from billing import selectors; selectors.plan_get(...)`` keeps working for
the services, the admin, the views and other apps.
"""

from billing.selectors.invoices import (
    InvoiceDocument,
    TaxSummaryRow,
    invoice_actions,
    invoice_document,
    invoice_total,
    lines_totals,
    refundable_payments,
)
from billing.selectors.plans import (
    billable_seats,
    line_quantity,
    live_subscription,
    plan_amount,
    plan_get,
    plan_tiers,
    seats_validate,
    subscription_get,
    subscription_mrr,
    usage_latest,
)
from billing.selectors.previews import (
    ChangePlan,
    InvoicePreview,
    PreviewLine,
    subscription_change_plan,
    subscription_change_preview,
    subscription_line_preview,
    upcoming_invoice,
)
from billing.selectors.revenue import MonthRow, RevenueSummary, revenue_currencies, revenue_summary

__all__ = [
    "ChangePlan",
    "InvoiceDocument",
    "InvoicePreview",
    "MonthRow",
    "PreviewLine",
    "RevenueSummary",
    "TaxSummaryRow",
    "billable_seats",
    "invoice_actions",
    "invoice_document",
    "invoice_total",
    "line_quantity",
    "lines_totals",
    "live_subscription",
    "plan_amount",
    "plan_get",
    "plan_tiers",
    "refundable_payments",
    "revenue_currencies",
    "revenue_summary",
    "seats_validate",
    "subscription_change_plan",
    "subscription_change_preview",
    "subscription_get",
    "subscription_line_preview",
    "subscription_mrr",
    "upcoming_invoice",
    "usage_latest",
]
