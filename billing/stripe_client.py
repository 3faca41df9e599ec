"""A small wrapper over the official ``stripe`` client for the few outgoing calls billing makes.

Enabled only when ``STRIPE_API_KEY`` is set. Every call carries an idempotency key derived from our own
ids (and the attempt number), so a retried job or a replayed request never charges or creates twice.
Calls are made after the database transaction commits; their outcome comes back through webhooks.
"""

from __future__ import annotations

import logging
from typing import Any

import stripe
from django.conf import settings
from django.db import transaction

from billing.money import to_stripe_amount

logger = logging.getLogger(__name__)


def stripe_enabled() -> bool:
    return bool(getattr(settings, "STRIPE_API_KEY", ""))


def idempotency_key(operation: str, object_id: Any, attempt: int | str = 0) -> str:
    """``gc-<operation>-<our id>-<attempt>``: stable across retries of the same attempt."""
    return f"gc-{operation}-{object_id}-{attempt}"


class StripeGateway:
    def __init__(self, api_key: str | None = None) -> None:
        key = api_key or getattr(settings, "STRIPE_API_KEY", "")
        if not key:
            raise RuntimeError("STRIPE_API_KEY is not set: Stripe calls are disabled.")
        self.client = stripe.StripeClient(key, max_network_retries=2)

    def invoice_pay(self, *, provider_invoice_id: str, invoice_id: Any, attempt: int) -> Any:
        """Ask Stripe to collect an open invoice again (a dunning retry)."""
        return self.client.v1.invoices.pay(
            provider_invoice_id,
            options={"idempotency_key": idempotency_key("invoice-pay", invoice_id, attempt)},
        )

    def refund_create(self, *, payment_reference: str, amount: int, currency: str, refund_id: Any) -> Any:
        """Refund ``amount`` minor units of ``currency`` (converted to Stripe's unit for that currency)."""
        params: dict[str, Any] = {
            "amount": to_stripe_amount(amount, currency),
            "metadata": {"gc_refund_id": str(refund_id)},
        }
        if payment_reference.startswith("pi_"):
            params["payment_intent"] = payment_reference
        else:
            params["charge"] = payment_reference
        return self.client.v1.refunds.create(
            params,  # type: ignore[arg-type]
            options={"idempotency_key": idempotency_key("refund", refund_id)},
        )


def after_commit_call(description: str, call: Any) -> None:
    """Run a Stripe call after commit; a failure is logged (the webhook or the next dunning run reconciles)."""

    def run() -> None:
        try:
            call()
        except stripe.StripeError:
            logger.exception("Stripe call failed: %s", description)

    transaction.on_commit(run, using="default")
