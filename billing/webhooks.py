"""Stripe webhooks: verify, store once, process in one transaction; safe out of order and on replay.

1. The signature (``Stripe-Signature``) is verified on the raw body with ``stripe.Webhook.construct_event``
   (tolerance ``STRIPE_WEBHOOK_TOLERANCE``, 300 s): a bad one is refused before anything is stored.
2. The event is stored under its unique id; a duplicate delivery finds the row and does nothing twice.
3. Processing locks the event row and applies it in one transaction with the row's new status. Handlers
   compare the event's ``created`` (subscriptions) or the local status (invoices: settled is final) with
   what is stored, so a late, older event is recorded as ``ignored`` rather than undoing a newer state.
   ``python manage.py billing_replay_events`` re-runs stored events through the same path.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import stripe
from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models, transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from billing import services
from billing.models import Invoice, Payment, Refund, Subscription, WebhookEvent
from billing.money import from_stripe_amount
from ghostcrm.audit.services import Actor, audit_record
from ghostcrm.core.errors import ApplicationError, Conflict, ValidationError

logger = logging.getLogger(__name__)
ACTOR = Actor.system("stripe-webhook")
RowT = TypeVar("RowT", bound=models.Model)


class SignatureError(ValidationError):
    code = "bad_signature"
    http_status = 400


class NotConfigured(ApplicationError):
    code = "not_configured"
    http_status = 404


@dataclass(frozen=True)
class Receipt:
    event: WebhookEvent
    duplicate: bool


def webhook_event_receive(*, payload: bytes, signature: str | None) -> Receipt:
    """Verify and store one delivery, then process it. A duplicate delivery is acknowledged untouched."""
    secret = getattr(settings, "STRIPE_WEBHOOK_SECRET", "")
    if not secret:
        raise NotConfigured("Stripe webhooks are not configured (STRIPE_WEBHOOK_SECRET is empty).")
    try:
        stripe.Webhook.construct_event(
            payload, signature, secret, tolerance=getattr(settings, "STRIPE_WEBHOOK_TOLERANCE", 300)
        )
    except stripe.SignatureVerificationError as exc:
        raise SignatureError(f"Stripe signature verification failed: {exc.user_message or exc}") from None
    except ValueError:
        raise ValidationError("The webhook body is not valid JSON.", code="bad_payload") from None
    data = json.loads(payload)
    event_id, event_type = data.get("id"), data.get("type")
    if not isinstance(event_id, str) or not isinstance(event_type, str) or not isinstance(data.get("created"), int):
        raise ValidationError("The event has no id, type or created time.", code="bad_payload")
    obj = (data.get("data") or {}).get("object") or {}
    with transaction.atomic():
        event, created = WebhookEvent.objects.get_or_create(
            event_id=event_id,
            defaults={
                "type": event_type,
                "object_id": str(obj.get("id", ""))[:255],
                "created": data["created"],
                "livemode": bool(data.get("livemode")),
                "payload": payload.decode("utf-8"),
            },
        )
    if not created and event.status in (WebhookEvent.Status.PROCESSED, WebhookEvent.Status.IGNORED):
        return Receipt(event, duplicate=True)
    return Receipt(webhook_event_process(event_id=event.pk), duplicate=not created)


def webhook_event_process(
    *,
    event_id: int,
    force: bool = False,
    actor: Actor | None = None,
    request: HttpRequest | None = None,
    raise_unexpected: bool = True,
) -> WebhookEvent:
    """Apply one stored event in one transaction. Processed events are skipped unless ``force`` (replay),
    which is safe because every handler is idempotent. A failure rolls the work back and is recorded.

    An unexpected error (not of the error family) is logged with its traceback and, by default, raised again:
    the webhook endpoint then answers 500, so Stripe retries. A replay passes ``raise_unexpected=False`` and
    gets the event back as ``failed`` with the error, like any other failure.

    A replay from the admin passes its ``actor`` and ``request``: the replay itself is audited with them (the
    changes the handlers make stay attributed to the provider, whose event they apply)."""
    try:
        with transaction.atomic():
            event = WebhookEvent.objects.select_for_update().get(pk=event_id)
            if event.status in (WebhookEvent.Status.PROCESSED, WebhookEvent.Status.IGNORED) and not force:
                return event
            data = json.loads(event.payload)
            handler = HANDLERS.get(event.type)
            note = (
                "unhandled event type"
                if handler is None
                else handler(data, (data.get("data") or {}).get("object") or {})
            )
            event.status = WebhookEvent.Status.IGNORED if note else WebhookEvent.Status.PROCESSED
            event.error = note or ""
            event.attempts += 1
            event.processed_at = timezone.now()
            event.save(update_fields=["status", "error", "attempts", "processed_at"])
            if force and actor is not None:
                audit_record(
                    action="billing.webhook.replay",
                    actor=actor,
                    target=event,
                    message=f"{event.type}: {event.status}",
                    request=request,
                )
            return event
    except Exception as exc:
        with transaction.atomic():
            event = WebhookEvent.objects.select_for_update().get(pk=event_id)
            event.status = WebhookEvent.Status.FAILED
            event.error = exc.message if isinstance(exc, ApplicationError) else f"{type(exc).__name__}: {exc}"
            event.attempts += 1
            event.save(update_fields=["status", "error", "attempts"])
            audit_record(
                action="billing.webhook.failed",
                actor=actor or ACTOR,
                target=event,
                outcome="failure",
                message=event.error[:2000],
                request=request,
            )
        if not isinstance(exc, ApplicationError):
            logger.exception("Stripe event %s failed", event.event_id)
            if raise_unexpected:
                raise
        return event


# --- Handlers: return "" when applied, else why the event was ignored --------------------------------


def _local_row(query: QuerySet[RowT], obj: dict[str, Any], metadata_key: str) -> RowT | None:
    """The local row of a Stripe object: by its Stripe id, else by our id in its metadata."""
    row = query.filter(provider_id=obj.get("id")).first() if obj.get("id") else None
    local_id = (obj.get("metadata") or {}).get(metadata_key)
    if row is None and local_id:
        try:
            row = query.filter(pk=local_id).first()
        except DjangoValidationError:  # a malformed id in metadata: not one of ours
            row = None
    return row


def _local_invoice(obj: dict[str, Any]) -> Invoice | None:
    invoice = _local_row(Invoice.objects.select_for_update(), obj, "gc_invoice_id")
    if invoice is not None and not invoice.provider_id and obj.get("id"):
        invoice.provider_id = obj.get("id")
        invoice.save(update_fields=["provider_id"])
    return invoice


def _payment_reference(obj: dict[str, Any]) -> str:
    for key in ("payment_intent", "charge"):
        value = obj.get(key)
        if isinstance(value, dict):
            value = value.get("id")
        if value:
            return str(value)
    return f"{obj.get('id')}:paid"


def _provider_amount(obj: dict[str, Any], key: str, currency: str) -> int:
    """An amount from a Stripe object (an integer in Stripe's unit) as our minor units of ``currency``.

    The object's currency must be the local one: the same integer means 100 times more in JPY than in EUR.
    Stripe's unit is the ISO minor unit except for its special cases (``billing.money.STRIPE_EXPONENTS``).
    """
    their_currency = str(obj.get("currency") or "").upper()
    if their_currency and their_currency != currency:
        raise ValidationError(
            f"The Stripe {obj.get('object') or 'object'} {obj.get('id')} is in {their_currency}, "
            f"the local one in {currency}; nothing was recorded.",
            code="currency_mismatch",
        )
    value = obj.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationError(
            f"{key} of Stripe {obj.get('object') or 'object'} {obj.get('id')} is {value!r}, "
            "not a whole non-negative number of minor units.",
            code="invalid_amount",
        )
    return from_stripe_amount(value, currency)


def on_invoice_paid(data: dict[str, Any], obj: dict[str, Any]) -> str:
    invoice = _local_invoice(obj)
    if invoice is None:
        return "no local invoice for this Stripe invoice"
    if invoice.status != Invoice.Status.OPEN:
        return f"local invoice is {invoice.status}"
    paid = _provider_amount(obj, "amount_paid", invoice.currency)
    # Stripe's amount_paid is cumulative; without it the invoice is paid in full. What Stripe collected above
    # what is still due here (a local credit note Stripe did not know about) becomes customer credit.
    amount = paid - invoice.amount_paid if paid else invoice.amount_remaining
    if amount <= 0:
        return "nothing left to record"
    services.payment_record(
        invoice_id=invoice.pk,
        amount=amount,
        actor=ACTOR,
        method=Payment.Method.STRIPE,
        provider_reference=_payment_reference(obj),
        excess_to_credit=True,
        at=dt.datetime.fromtimestamp(data["created"], tz=dt.UTC),
    )
    return ""


def on_invoice_payment_failed(data: dict[str, Any], obj: dict[str, Any]) -> str:
    invoice = _local_invoice(obj)
    if invoice is None:
        return "no local invoice for this Stripe invoice"
    if invoice.status != Invoice.Status.OPEN:
        return f"local invoice is {invoice.status}: a late failure"
    error = f"Stripe payment attempt {obj.get('attempt_count') or '?'} failed"
    payment = services.payment_failure_record(
        invoice_id=invoice.pk,
        amount=_provider_amount(obj, "amount_due", invoice.currency),
        actor=ACTOR,
        provider_reference=f"{data['id']}:failed",
        message=error,
    )
    return "" if payment is not None else "already recorded"


def on_invoice_voided(data: dict[str, Any], obj: dict[str, Any]) -> str:
    invoice = _local_invoice(obj)
    if invoice is None or invoice.status not in (Invoice.Status.OPEN, Invoice.Status.DRAFT):
        return "no open local invoice"
    services.invoice_void(invoice_id=invoice.pk, actor=ACTOR, reason="voided in Stripe")
    return ""


def on_invoice_uncollectible(data: dict[str, Any], obj: dict[str, Any]) -> str:
    invoice = _local_invoice(obj)
    if invoice is None or invoice.status != Invoice.Status.OPEN:
        return "no open local invoice"
    services.invoice_mark_uncollectible(invoice_id=invoice.pk, actor=ACTOR)
    return ""


STRIPE_SUBSCRIPTION_STATUS = {
    "trialing": Subscription.Status.TRIALING,
    "active": Subscription.Status.ACTIVE,
    "past_due": Subscription.Status.PAST_DUE,
    "canceled": Subscription.Status.CANCELED,
    "unpaid": Subscription.Status.UNPAID,
    "incomplete": Subscription.Status.INCOMPLETE,
    "incomplete_expired": Subscription.Status.CANCELED,
    "paused": Subscription.Status.PAUSED,
}


def _ts(value: Any) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(int(value), tz=dt.UTC) if value else None


def on_subscription_updated(data: dict[str, Any], obj: dict[str, Any]) -> str:
    subscription = _local_row(Subscription.objects.all(), obj, "gc_subscription_id")
    if subscription is None:
        return "no local subscription for this Stripe subscription"
    status = STRIPE_SUBSCRIPTION_STATUS.get(str(obj.get("status")))
    if status is None:
        raise ValidationError(f"Unknown Stripe subscription status {obj.get('status')!r}.")
    deleted = data.get("type") == "customer.subscription.deleted"
    items = ((obj.get("items") or {}).get("data") or [{}])[0]
    created = int(data["created"])
    state = services.ProviderSubscriptionState(
        provider_id=str(obj.get("id")) if obj.get("id") else None,
        event_created=created,
        status=Subscription.Status.CANCELED if deleted else status,
        period_start=_ts(obj.get("current_period_start") or items.get("current_period_start")),
        period_end=_ts(obj.get("current_period_end") or items.get("current_period_end")),
        cancel_at_period_end=bool(obj["cancel_at_period_end"]) if "cancel_at_period_end" in obj else None,
        seats=int(items["quantity"]) if items.get("quantity") else None,
        # A deleted subscription only ends: its price no longer matters.
        price_id=None if deleted else (items.get("price") or {}).get("id"),
        ended_at=_ts(obj.get("ended_at")) or _ts(created),
        canceled_at=_ts(obj.get("canceled_at")),
    )
    try:
        services.subscription_provider_sync(
            subscription_id=subscription.pk, state=state, actor=ACTOR, message=f"{data.get('type')} {data.get('id')}"
        )
    except Conflict as exc:
        if exc.code != "stale_event":
            raise
        return exc.message
    return ""


def on_charge_refunded(data: dict[str, Any], obj: dict[str, Any]) -> str:
    references = [obj.get("id"), obj.get("payment_intent")]
    payment = Payment.objects.filter(provider_reference__in=[r for r in references if r]).first()
    if payment is None:
        return "no local payment for this charge"
    refunds = (obj.get("refunds") or {}).get("data") or []
    total_refunded = _provider_amount(obj, "amount_refunded", payment.currency)
    if not refunds and total_refunded > payment.amount_refunded:
        # Stripe API versions from 2022-11-15 no longer include the refunds list in a charge: record the
        # difference of the cumulative amount, keyed on it, so a duplicate of the same state adds nothing.
        refunds = [
            {
                "id": f"{obj.get('id')}:refunded:{total_refunded}",
                "amount": total_refunded - payment.amount_refunded,
                "reason": "refunded in Stripe",
            }
        ]
    applied = 0
    for refund in refunds:
        if not refund.get("id") or refund.get("status") not in (None, "succeeded", "pending"):
            continue
        local_id = (refund.get("metadata") or {}).get("gc_refund_id")
        if local_id and not Refund.objects.filter(provider_reference=refund["id"]).exists():
            # A refund we asked Stripe for: link it instead of recording it twice.
            try:
                linked = Refund.objects.filter(pk=local_id, payment=payment, provider_reference__isnull=True)
                if linked.update(provider_reference=refund["id"]):
                    applied += 1
                    continue
            except DjangoValidationError:
                pass
        before = payment.refunds.count()
        services.payment_refund(
            payment_id=payment.pk,
            actor=ACTOR,
            reason=refund.get("reason") or "refunded in Stripe",
            amount=_provider_amount(
                {**refund, "currency": refund.get("currency") or obj.get("currency")}, "amount", payment.currency
            ),
            provider_reference=refund["id"],
            call_provider=False,
            at=_ts(data["created"]),
        )
        applied += payment.refunds.count() - before
    return "" if applied else "refunds already recorded"


HANDLERS: dict[str, Callable[[dict[str, Any], dict[str, Any]], str]] = {
    "invoice.paid": on_invoice_paid,
    "invoice.payment_succeeded": on_invoice_paid,
    "invoice.payment_failed": on_invoice_payment_failed,
    "invoice.voided": on_invoice_voided,
    "invoice.marked_uncollectible": on_invoice_uncollectible,
    "customer.subscription.created": on_subscription_updated,
    "customer.subscription.updated": on_subscription_updated,
    "customer.subscription.deleted": on_subscription_updated,
    "charge.refunded": on_charge_refunded,
}
