"""E-mails to an organisation's billing contact, sent only once the transaction that caused them commits."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string

from billing.models import Customer

SUBJECTS = {
    "invoice_finalized": "Your invoice {number}",
    "invoice_paid": "Payment received for invoice {number}",
    "payment_overdue": "Payment overdue: invoice {number}",
    "payment_retry": "Reminder: invoice {number} is still unpaid",
    "service_suspended": "Your GhostCRM service is suspended: invoice {number} unpaid",
    "service_resumed": "Your GhostCRM service is active again",
    "refund_issued": "Refund issued for invoice {number}",
}


def billing_email_send(*, customer: Customer, kind: str, context: dict[str, Any]) -> None:
    """Queue one e-mail to the customer's billing contact; it goes out when the current transaction commits."""
    subject = SUBJECTS[kind].format(**context)
    body = render_to_string(
        f"billing/email/{kind}.txt", {"customer": customer, "site_url": settings.SITE_URL, **context}
    )
    recipient = customer.email

    def send() -> None:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [recipient], fail_silently=False)

    transaction.on_commit(send, using="default")
