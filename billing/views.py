"""HTTP entry points: the Stripe webhook, the printable invoice and the revenue dashboard (thin callers)."""

from __future__ import annotations

import logging
from typing import Any

from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import permission_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from billing import charts, selectors
from billing.money import format_money, normalize_currency
from billing.webhooks import webhook_event_receive
from ghostcrm.core.errors import ApplicationError, NotFound

logger = logging.getLogger(__name__)


@csrf_exempt  # Stripe cannot send a CSRF token; the signature on the raw body authenticates the request
@require_POST
def stripe_webhook(request: HttpRequest) -> HttpResponse:
    try:
        receipt = webhook_event_receive(payload=request.body, signature=request.headers.get("Stripe-Signature"))
    except ApplicationError as exc:
        logger.warning("Stripe webhook refused: %s", exc.message)
        return JsonResponse(exc.as_dict(), status=exc.http_status)
    event = receipt.event
    return JsonResponse(
        {"received": True, "event": event.event_id, "status": event.status, "duplicate": receipt.duplicate}
    )


@staff_member_required
@permission_required("billing.view_invoice", raise_exception=True)
def invoice_print(request: HttpRequest, invoice_id: str) -> HttpResponse:
    try:
        document = selectors.invoice_document(invoice_id=invoice_id)
    except NotFound:
        raise Http404("No such invoice.") from None
    invoice = document.invoice

    def money(minor: int) -> str:
        return format_money(minor, invoice.currency)

    totals = {
        name: money(getattr(invoice, name))
        for name in ("subtotal", "tax", "total", "amount_due", "amount_paid", "amount_credited", "starting_balance")
    }
    totals["amount_remaining"] = money(invoice.amount_remaining)
    rows = [
        {
            "line": line,
            # A unit price only where it is exact (a prorated line's amount need not divide by its quantity).
            "unit": money(line.amount // line.quantity) if line.quantity and line.amount % line.quantity == 0 else "",
            "amount": money(line.amount),
            "tax": money(line.tax_amount),
        }
        for line in document.lines
    ]
    context = {
        "invoice": invoice,
        "document": document,
        "rows": rows,
        "money": totals,
        "tax_summary": [{"name": r.name, "base": money(r.base), "tax": money(r.tax)} for r in document.tax_summary],
        "credit_notes": [{"note": n, "amount": money(n.amount)} for n in document.credit_notes],
        "payments": [{"payment": p, "amount": money(p.amount)} for p in document.payments],
    }
    return render(request, "billing/invoice_print.html", context)


def revenue_dashboard(request: HttpRequest, **extra: Any) -> HttpResponse:
    """The admin's revenue dashboard (opened from the "Revenue dashboard" entry under Billing)."""
    requested = request.GET.get("currency")
    try:
        currency = normalize_currency(requested) if requested else None
    except ApplicationError:
        currency = None
    summary = selectors.revenue_summary(currency=currency)
    context = {
        **admin.site.each_context(request),
        "title": "Revenue dashboard",
        "summary": summary,
        "mrr": format_money(summary.mrr, summary.currency),
        "arr": format_money(summary.arr, summary.currency),
        "past_due": format_money(summary.past_due_amount, summary.currency),
        "rows": [
            {
                "row": row,
                "new": format_money(row.new + row.reactivation, summary.currency),
                "expansion": format_money(row.expansion, summary.currency),
                "contraction": format_money(row.contraction, summary.currency),
                "churn": format_money(row.churn, summary.currency),
                "mrr_end": format_money(row.mrr_end, summary.currency),
            }
            for row in summary.months
        ],
        "top": [(name, format_money(value, summary.currency)) for name, value in summary.top_accounts],
        **charts.revenue_charts(summary),
        **extra,
    }
    return render(request, "billing/revenue_dashboard.html", context)
