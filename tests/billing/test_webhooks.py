"""Stripe webhooks: signature on the raw body, store once, process once, out of order, replay."""

from __future__ import annotations

import json
import time
from io import StringIO
from types import SimpleNamespace
from typing import Any

import pytest
import stripe
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from billing import services, webhooks
from billing.models import CreditNote, Customer, Invoice, Payment, Plan, Subscription, WebhookEvent
from billing.stripe_client import StripeGateway
from ghostcrm.audit.models import AuditEvent
from tests.billing.factories import ACTOR, T0, make_organization, make_plan
from tests.conftest import login_with_verified_otp

pytestmark = pytest.mark.django_db
SECRET = "whsec_test_secret_for_signing_locally"
URL = "/billing/stripe/webhook/"


@pytest.fixture(autouse=True)
def stripe_secret(settings: Any) -> None:
    settings.STRIPE_WEBHOOK_SECRET = SECRET


def event(event_id: str, event_type: str, obj: dict[str, Any], created: int = 1_767_225_600) -> str:
    return json.dumps(
        {"id": event_id, "object": "event", "type": event_type, "created": created, "livemode": False,
         "data": {"object": obj}}
    )  # fmt: skip


def deliver(client: Any, payload: str, *, secret: str = SECRET, timestamp: int | None = None) -> Any:
    header = stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp=timestamp)
    return client.post(URL, data=payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=header)


@pytest.fixture
def open_invoice(db: Any) -> Invoice:
    make_plan("basic", 3000)
    organization = make_organization()
    subscription = services.subscription_create(organization_id=organization.pk, plan_code="basic", actor=ACTOR, at=T0)
    Subscription.objects.filter(pk=subscription.pk).update(provider_id="sub_123")
    invoice = Invoice.objects.get(subscription=subscription)
    return invoice


def paid_event(invoice: Invoice, event_id: str = "evt_paid_1") -> str:
    return event(
        event_id,
        "invoice.paid",
        {"id": "in_123", "object": "invoice", "amount_paid": 3000, "payment_intent": "pi_123",
         "metadata": {"gc_invoice_id": str(invoice.pk)}},
    )  # fmt: skip


def test_url_is_the_named_route() -> None:
    assert reverse("billing:stripe-webhook") == URL


@pytest.mark.parametrize(
    "tamper",
    ["wrong_secret", "altered_body", "no_header", "too_old"],
)
def test_a_bad_signature_is_refused_and_nothing_is_stored(client: Any, open_invoice: Invoice, tamper: str) -> None:
    payload = paid_event(open_invoice)
    if tamper == "wrong_secret":
        response = deliver(client, payload, secret="whsec_someone_else")
    elif tamper == "altered_body":
        header = stripe.WebhookSignature.generate_signature_header(payload, SECRET)
        forged = payload.replace('"amount_paid": 3000', '"amount_paid": 1')
        response = client.post(URL, data=forged, content_type="application/json", HTTP_STRIPE_SIGNATURE=header)
    elif tamper == "no_header":
        response = client.post(URL, data=payload, content_type="application/json")
    else:
        response = deliver(client, payload, timestamp=int(time.time()) - 301)  # outside the 300 s tolerance
    assert response.status_code == 400
    assert response.json()["code"] == "bad_signature"
    assert WebhookEvent.objects.count() == 0
    assert Payment.objects.count() == 0
    open_invoice.refresh_from_db()
    assert open_invoice.status == "open"


def test_without_a_secret_the_endpoint_is_off(client: Any, settings: Any, open_invoice: Invoice) -> None:
    settings.STRIPE_WEBHOOK_SECRET = ""
    response = deliver(client, paid_event(open_invoice))
    assert response.status_code == 404
    assert response.json()["code"] == "not_configured"
    assert WebhookEvent.objects.count() == 0
    assert client.get(URL).status_code == 405


def test_a_signed_event_is_stored_and_processed_once(client: Any, open_invoice: Invoice) -> None:
    payload = paid_event(open_invoice)
    first = deliver(client, payload)
    assert first.status_code == 200
    assert first.json() == {"received": True, "event": "evt_paid_1", "status": "processed", "duplicate": False}
    open_invoice.refresh_from_db()
    assert (open_invoice.status, open_invoice.amount_paid, open_invoice.provider_id) == ("paid", 3000, "in_123")
    payment = Payment.objects.get()
    assert (payment.provider_reference, payment.method, payment.amount) == ("pi_123", "stripe", 3000)

    again = deliver(client, payload)
    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    assert WebhookEvent.objects.count() == 1
    assert Payment.objects.count() == 1
    assert WebhookEvent.objects.get().attempts == 1

    # The same payment announced by another event (invoice.payment_succeeded) is not recorded twice.
    other = deliver(client, paid_event(open_invoice, "evt_paid_2").replace("invoice.paid", "invoice.payment_succeeded"))
    assert other.json()["status"] == "ignored"
    assert Payment.objects.count() == 1


def test_a_late_failure_after_payment_is_ignored(client: Any, open_invoice: Invoice) -> None:
    deliver(client, paid_event(open_invoice))
    failed = event(
        "evt_failed_old",
        "invoice.payment_failed",
        {"id": "in_123", "object": "invoice", "amount_due": 3000, "metadata": {"gc_invoice_id": str(open_invoice.pk)}},
        created=1_767_225_000,
    )
    response = deliver(client, failed)
    assert response.json()["status"] == "ignored"
    assert WebhookEvent.objects.get(event_id="evt_failed_old").error.startswith("local invoice is paid")
    assert list(Payment.objects.values_list("status", flat=True)) == ["succeeded"]


def test_subscription_events_out_of_order(client: Any, open_invoice: Invoice) -> None:
    def sub_event(event_id: str, status: str, created: int, quantity: int) -> str:
        return event(
            event_id,
            "customer.subscription.updated",
            {"id": "sub_123", "object": "subscription", "status": status, "cancel_at_period_end": False,
             "items": {"data": [{"quantity": quantity, "current_period_start": 1_767_225_600,
                                 "current_period_end": 1_769_904_000}]}},
            created=created,
        )  # fmt: skip

    newer = deliver(client, sub_event("evt_sub_new", "past_due", 2_000_000_000, 3))
    older = deliver(client, sub_event("evt_sub_old", "active", 1_900_000_000, 1))
    assert newer.json()["status"] == "processed"
    assert older.json()["status"] == "ignored"
    subscription = Subscription.objects.get(provider_id="sub_123")
    assert (subscription.status, subscription.seats, subscription.provider_updated) == ("past_due", 3, 2_000_000_000)
    assert "stale" in WebhookEvent.objects.get(event_id="evt_sub_old").error


def test_replay_processes_pending_events_and_never_twice(client: Any, open_invoice: Invoice) -> None:
    # Stored, then the process died before processing it: the row is pending.
    payload = paid_event(open_invoice, "evt_stranded")
    WebhookEvent.objects.create(
        event_id="evt_stranded", type="invoice.paid", object_id="in_123", created=1_767_225_600, payload=payload
    )
    out = StringIO()
    call_command("billing_replay_events", stdout=out)
    assert "Replayed 1 event(s): 1 processed." in out.getvalue()
    open_invoice.refresh_from_db()
    assert open_invoice.status == "paid"
    assert Payment.objects.count() == 1

    out = StringIO()
    call_command("billing_replay_events", "--all", stdout=out)  # everything again: idempotent handlers
    assert "Replayed 1 event(s): 1 ignored." in out.getvalue()
    assert Payment.objects.count() == 1
    assert WebhookEvent.objects.get().attempts == 2


def test_replay_names_an_unknown_event() -> None:
    with pytest.raises(CommandError, match="No stored event with id evt_nope"):
        call_command("billing_replay_events", "--event", "evt_nope", stdout=StringIO())


def test_a_refund_in_stripe_becomes_a_refund_and_credit_note(client: Any, open_invoice: Invoice) -> None:
    deliver(client, paid_event(open_invoice))
    refunded = event(
        "evt_refund",
        "charge.refunded",
        {"id": "ch_1", "object": "charge", "payment_intent": "pi_123",
         "refunds": {"data": [{"id": "re_1", "amount": 1000, "status": "succeeded",
                               "reason": "requested_by_customer"}]}},
    )  # fmt: skip
    assert deliver(client, refunded).json()["status"] == "processed"
    assert deliver(client, refunded).json()["duplicate"] is True
    payment = Payment.objects.get()
    assert payment.amount_refunded == 1000
    assert list(payment.refunds.values_list("provider_reference", "amount")) == [("re_1", 1000)]
    assert open_invoice.credit_notes.get().number == "GC-CN-2026-000001"


def invoice_event(event_id: str, event_type: str, invoice: Invoice, **fields: Any) -> str:
    obj = {"id": "in_123", "object": "invoice", "currency": "eur", "metadata": {"gc_invoice_id": str(invoice.pk)}}
    return event(event_id, event_type, {**obj, **fields})


def test_a_payment_failure_is_recorded_once(client: Any, open_invoice: Invoice) -> None:
    payload = invoice_event("evt_fail", "invoice.payment_failed", open_invoice, amount_due=3000, attempt_count=2)
    assert deliver(client, payload).json()["status"] == "processed"
    failed = Payment.objects.get()
    assert (failed.status, failed.amount, failed.method) == ("failed", 3000, "stripe")
    assert failed.failure_message == "Stripe payment attempt 2 failed"
    open_invoice.refresh_from_db()
    assert (open_invoice.status, open_invoice.amount_paid) == ("open", 0)
    call_command("billing_replay_events", "--event", "evt_fail", stdout=StringIO())
    assert Payment.objects.count() == 1
    assert WebhookEvent.objects.get().error == "already recorded"


def test_voided_in_stripe_voids_the_local_invoice(client: Any, open_invoice: Invoice) -> None:
    assert deliver(client, invoice_event("evt_void", "invoice.voided", open_invoice)).json()["status"] == "processed"
    open_invoice.refresh_from_db()
    assert (open_invoice.status, open_invoice.provider_id) == ("void", "in_123")
    # Late: a payment for a voided invoice records nothing.
    assert deliver(client, paid_event(open_invoice, "evt_paid_late")).json()["status"] == "ignored"
    assert Payment.objects.count() == 0


def test_marked_uncollectible_in_stripe(client: Any, open_invoice: Invoice) -> None:
    payload = invoice_event("evt_unc", "invoice.marked_uncollectible", open_invoice)
    assert deliver(client, payload).json()["status"] == "processed"
    open_invoice.refresh_from_db()
    assert open_invoice.status == "uncollectible"
    assert open_invoice.marked_uncollectible_at is not None


def sub_object(subscription: Subscription, status: str, **fields: Any) -> dict[str, Any]:
    return {"id": "sub_new", "object": "subscription", "status": status,
            "metadata": {"gc_subscription_id": str(subscription.pk)},
            "items": {"data": [{"quantity": 1, "current_period_start": 1_767_225_600,
                                "current_period_end": 1_769_904_000}]}, **fields}  # fmt: skip


def test_subscription_created_links_by_metadata_and_deleted_cancels(client: Any, db: Any) -> None:
    make_plan("basic", 3000)
    organization = make_organization()
    subscription = services.subscription_create(organization_id=organization.pk, plan_code="basic", actor=ACTOR, at=T0)
    created = event("evt_sub_c", "customer.subscription.created", sub_object(subscription, "active"), 1_767_225_700)
    assert deliver(client, created).json()["status"] == "processed"
    subscription.refresh_from_db()
    assert (subscription.provider_id, subscription.status, subscription.provider_updated) == (
        "sub_new", "active", 1_767_225_700
    )  # fmt: skip

    deleted = event(
        "evt_sub_d",
        "customer.subscription.deleted",
        sub_object(subscription, "canceled", ended_at=1_768_000_000, canceled_at=1_767_999_000),
        1_768_000_001,
    )
    assert deliver(client, deleted).json()["status"] == "processed"
    subscription.refresh_from_db()
    assert subscription.status == "canceled"
    assert (int(subscription.ended_at.timestamp()), int(subscription.canceled_at.timestamp())) == (
        1_768_000_000, 1_767_999_000
    )  # fmt: skip
    assert list(subscription.mrr_movements.values_list("kind", "delta")) == [("new", 3000), ("churn", -3000)]


def test_an_unknown_object_is_ignored_not_failed(client: Any, db: Any) -> None:
    orphan = event("evt_orphan", "customer.subscription.updated", {"id": "sub_nobody", "status": "active"})
    response = deliver(client, orphan)
    assert response.json()["status"] == "ignored"
    assert WebhookEvent.objects.get().error == "no local subscription for this Stripe subscription"
    assert deliver(client, event("evt_other", "customer.created", {"id": "cus_1"})).json()["status"] == "ignored"


def test_stripe_pays_more_than_is_due_here_and_the_excess_becomes_credit(client: Any, open_invoice: Invoice) -> None:
    services.credit_note_create(invoice_id=open_invoice.pk, amount=1000, reason="goodwill", actor=ACTOR)
    assert deliver(client, paid_event(open_invoice)).json()["status"] == "processed"  # Stripe collected 30.00
    open_invoice.refresh_from_db()
    assert (open_invoice.status, open_invoice.amount_paid) == ("paid", 2000)
    customer = Customer.objects.get(pk=open_invoice.customer_id)
    assert (customer.balance, customer.balance_currency) == (-1000, "EUR")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"currency": "jpy"}, "is in JPY, the local one in EUR; nothing was recorded."),
        ({"amount_paid": "30.00"}, "amount_paid of Stripe invoice in_123 is '30.00', not a whole non-negative number"),
        ({"amount_paid": 30.0}, "is 30.0, not a whole non-negative number of minor units"),
        ({"amount_paid": -3000}, "is -3000, not a whole non-negative number of minor units"),
    ],
)
def test_amounts_from_stripe_are_checked_minor_units_of_the_same_currency(
    client: Any, open_invoice: Invoice, fields: dict[str, Any], message: str
) -> None:
    payload = invoice_event("evt_bad_amount", "invoice.paid", open_invoice, **{"amount_paid": 3000, **fields})
    response = deliver(client, payload)
    assert response.status_code == 200
    assert response.json()["status"] == "failed"
    assert message in WebhookEvent.objects.get().error
    assert Payment.objects.count() == 0
    open_invoice.refresh_from_db()
    assert (open_invoice.status, open_invoice.amount_paid) == ("open", 0)


def test_a_charge_without_its_refund_list_is_refunded_by_the_cumulative_amount(
    client: Any, open_invoice: Invoice
) -> None:
    deliver(client, paid_event(open_invoice))

    def refunded(event_id: str, total: int) -> str:
        obj = {"id": "ch_1", "object": "charge", "payment_intent": "pi_123", "currency": "eur",
               "amount_refunded": total}  # fmt: skip
        return event(event_id, "charge.refunded", obj)

    assert deliver(client, refunded("evt_r1", 1000)).json()["status"] == "processed"
    assert deliver(client, refunded("evt_r2", 2500)).json()["status"] == "processed"
    assert deliver(client, refunded("evt_r2_copy", 2500)).json()["status"] == "ignored"  # same state again
    payment = Payment.objects.get()
    assert payment.amount_refunded == 2500
    assert sorted(payment.refunds.values_list("amount", flat=True)) == [1000, 1500]
    assert CreditNote.objects.count() == 2


def test_replay_exits_with_an_error_when_an_event_still_fails(open_invoice: Invoice) -> None:
    payload = invoice_event("evt_jpy", "invoice.paid", open_invoice, amount_paid=3000, currency="jpy")
    WebhookEvent.objects.create(event_id="evt_jpy", type="invoice.paid", created=1_767_225_600, payload=payload)
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError, match=r"1 event\(s\) failed again; see the lines above\."):
        call_command("billing_replay_events", stdout=out, stderr=err)
    assert "Replayed 1 event(s): 1 failed." in out.getvalue()
    assert "evt_jpy: The Stripe invoice in_123 is in JPY" in err.getvalue()
    assert WebhookEvent.objects.get().status == "failed"
    with pytest.raises(CommandError, match="Use --all alone"):
        call_command("billing_replay_events", "--all", "--status", "failed", stdout=StringIO())


def test_stripe_amounts_in_a_special_case_currency_are_rescaled(client: Any, db: Any) -> None:
    """Stripe counts ISK in hundredths (100 = 1 krona); our minor unit for ISK is the krona (ISO 4217)."""
    make_plan("isk", 5_000, currency="ISK")  # 5,000 kronur
    organization = make_organization()
    subscription = services.subscription_create(organization_id=organization.pk, plan_code="isk", actor=ACTOR, at=T0)
    invoice = Invoice.objects.get(subscription=subscription)
    paid = invoice_event("evt_isk", "invoice.paid", invoice, currency="isk", amount_paid=300_000)  # 3,000 kronur
    assert deliver(client, paid).json()["status"] == "processed"
    invoice.refresh_from_db()
    assert (invoice.amount_paid, invoice.amount_remaining, invoice.status) == (3_000, 2_000, "open")


def test_a_refund_sent_to_stripe_is_in_stripes_unit(open_invoice: Invoice, settings: Any) -> None:
    sent: list[dict[str, Any]] = []

    class Refunds:
        def create(self, params: dict[str, Any], options: dict[str, Any]) -> None:
            sent.append({**params, **options})

    gateway = StripeGateway(api_key="sk_test_local")  # builds a client; nothing goes over the network
    gateway.client = SimpleNamespace(v1=SimpleNamespace(refunds=Refunds()))  # type: ignore[assignment]
    gateway.refund_create(payment_reference="pi_9", amount=2_500, currency="ISK", refund_id="r1")
    gateway.refund_create(payment_reference="ch_9", amount=1_250, currency="EUR", refund_id="r2")
    assert sent == [
        {"amount": 250_000, "metadata": {"gc_refund_id": "r1"}, "payment_intent": "pi_9",
         "idempotency_key": "gc-refund-r1-0"},
        {"amount": 1_250, "metadata": {"gc_refund_id": "r2"}, "charge": "ch_9", "idempotency_key": "gc-refund-r2-0"},
    ]  # fmt: skip


def test_a_plan_changed_in_stripe_is_followed_by_its_price_id(client: Any, open_invoice: Invoice) -> None:
    pro = make_plan("pro", 9000)
    subscription = Subscription.objects.get(provider_id="sub_123")

    def updated(event_id: str, price_id: str, created: int) -> str:
        obj = {"id": "sub_123", "object": "subscription", "status": "active",
               "items": {"data": [{"quantity": 1, "price": {"id": price_id}}]}}  # fmt: skip
        return event(event_id, "customer.subscription.updated", obj, created)

    unknown = deliver(client, updated("evt_price_1", "price_pro", 1_767_300_000))
    assert unknown.json()["status"] == "failed"
    assert "No plan here has the Stripe price id 'price_pro'" in WebhookEvent.objects.get(event_id="evt_price_1").error
    assert Subscription.objects.get(pk=subscription.pk).plan.code == "basic"

    Plan.objects.filter(pk=pro.pk).update(provider_id="price_pro")
    call_command("billing_replay_events", "--event", "evt_price_1", stdout=StringIO())
    subscription.refresh_from_db()
    assert subscription.plan.code == "pro"
    assert list(subscription.mrr_movements.values_list("kind", "delta")) == [("new", 3000), ("expansion", 6000)]


def test_a_replay_from_the_admin_is_audited_with_the_client(
    client: Any, super_admin: Any, open_invoice: Invoice
) -> None:
    stored = WebhookEvent.objects.create(
        event_id="evt_admin", type="invoice.paid", object_id="in_123", created=1_767_225_600,
        payload=paid_event(open_invoice, "evt_admin"),
    )  # fmt: skip
    admin = login_with_verified_otp(client, super_admin)
    admin.post(
        "/admin/billing/webhookevent/",
        {"action": "replay", ACTION_CHECKBOX_NAME: [stored.pk]},
        REMOTE_ADDR="198.51.100.9",
        HTTP_USER_AGENT="QA-Browser/2.0",
    )
    open_invoice.refresh_from_db()
    assert open_invoice.status == "paid"
    replay = AuditEvent.objects.get(action="billing.webhook.replay")
    assert (replay.ip_address, replay.user_agent, replay.actor_id) == (
        "198.51.100.9",
        "QA-Browser/2.0",
        str(super_admin.pk),
    )
    assert replay.message == "invoice.paid: processed"
    assert replay.target_id == str(stored.pk)


def test_a_replay_records_an_unexpected_error_and_carries_on(
    client: Any, super_admin: Any, open_invoice: Invoice, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A handler bug during a replay (not of the error family) fails that event, recorded and shown, without a
    500 in the admin or a traceback ending the command; the webhook endpoint still raises it (Stripe retries)."""

    def broken(data: Any, obj: Any) -> str:
        raise KeyError("amount_paid")

    monkeypatch.setitem(webhooks.HANDLERS, "invoice.paid", broken)
    stored = WebhookEvent.objects.create(
        event_id="evt_bug", type="invoice.paid", object_id="in_123", created=1_767_225_600,
        payload=paid_event(open_invoice, "evt_bug"),
    )  # fmt: skip
    with pytest.raises(KeyError):
        webhooks.webhook_event_process(event_id=stored.pk)
    admin = login_with_verified_otp(client, super_admin)
    page = admin.post(
        "/admin/billing/webhookevent/", {"action": "replay", ACTION_CHECKBOX_NAME: [stored.pk]}, follow=True
    )
    html = page.content.decode()
    assert page.status_code == 200
    assert "vt_bug: KeyError: &#x27;amount_paid&#x27;</li>" in html  # the admin capitalises messages
    assert "Replayed 1 event(s): failed." in html
    stored.refresh_from_db()
    assert (stored.status, stored.attempts) == ("failed", 2)

    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError, match=r"1 event\(s\) failed again"):
        call_command("billing_replay_events", "--event", "evt_bug", stdout=out, stderr=err)
    assert "Replayed 1 event(s): 1 failed." in out.getvalue()
    assert "evt_bug: KeyError: 'amount_paid'" in err.getvalue()
    assert Invoice.objects.get(pk=open_invoice.pk).status == "open"
