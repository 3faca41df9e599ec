"""The billing admin: plan prices checked against the currency, invoice actions, change plan with a preview,
refunds, the printable invoice, and role permissions."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME

from billing import services
from billing.models import CreditNote, Invoice, Payment, Plan, Product, Subscription
from tests.billing.conftest import ACTOR, make_organization, make_plan
from tests.conftest import login_with_verified_otp

pytestmark = pytest.mark.django_db


def plan_form(code: str, price: str, currency: str = "EUR") -> dict[str, Any]:
    product = Product.objects.get_or_create(name="GhostCRM")[0]
    return {
        "code": code, "name": code.title(), "product": product.pk, "active": "on", "currency": currency,
        "interval": "month", "scheme": "flat", "price": price, "tiers_mode": "", "trial_days": "0",
        "tiers-TOTAL_FORMS": "0", "tiers-INITIAL_FORMS": "0", "tiers-MIN_NUM_FORMS": "0", "tiers-MAX_NUM_FORMS": "1000",
    }  # fmt: skip


def test_a_plan_price_is_checked_against_the_currency(admin_session: Any) -> None:
    response = admin_session.post("/admin/billing/plan/add/", plan_form("bad", "12.505"))
    assert response.status_code == 200
    assert "12.505 has more decimals than EUR allows (2)." in response.content.decode()
    response = admin_session.post("/admin/billing/plan/add/", plan_form("yen", "99.5", "JPY"))
    assert "more decimals than JPY allows (0)" in response.content.decode()
    response = admin_session.post("/admin/billing/plan/add/", plan_form("neg", "-1"))
    assert "must not be negative" in response.content.decode()
    assert not Plan.objects.exists()
    response = admin_session.post("/admin/billing/plan/add/", plan_form("good", "12.50"))
    assert response.status_code == 302
    assert Plan.objects.get(code="good").unit_amount == 1250


@pytest.fixture
def subscription(db: Any) -> Subscription:
    make_plan("basic", 3000)
    make_plan("pro", 9000)
    organization = make_organization(name="Globex")
    return services.subscription_create(organization_id=organization.pk, plan_code="basic", actor=ACTOR)


def test_change_plan_previews_then_confirms(admin_session: Any, subscription: Subscription) -> None:
    url = f"/admin/billing/subscription/{subscription.pk}/change-plan/"
    assert admin_session.get(url).status_code == 200
    pro = Plan.objects.get(code="pro")
    form = {"plan": pro.pk, "seats": "1", "proration_behavior": "always_invoice"}
    preview = admin_session.post(url, {**form, "preview": "1"})
    html = preview.content.decode()
    assert preview.status_code == 200 and "Invoice issued now on confirmation" in html
    assert "Unused time on Basic" in html and "Remaining time on Pro" in html
    subscription.refresh_from_db()
    assert subscription.plan.code == "basic"  # previewing changes nothing
    assert Invoice.objects.count() == 1

    done = admin_session.post(url, {**form, "confirm": "1"})
    assert done.status_code == 302
    subscription.refresh_from_db()
    assert subscription.plan.code == "pro"
    assert Invoice.objects.filter(billing_reason="subscription_update", status="open").count() == 1


def test_change_plan_shows_service_errors_as_form_errors(admin_session: Any, subscription: Subscription) -> None:
    services.subscription_cancel(subscription_id=subscription.pk, at_period_end=False, actor=ACTOR)
    url = f"/admin/billing/subscription/{subscription.pk}/change-plan/"
    pro = Plan.objects.get(code="pro")
    response = admin_session.post(url, {"plan": pro.pk, "seats": "1", "proration_behavior": "none", "preview": "1"})
    assert "its plan cannot be changed" in response.content.decode()


def test_invoice_actions_and_printable_page(admin_session: Any, subscription: Subscription) -> None:
    invoice = Invoice.objects.get()
    page = admin_session.get(f"/billing/invoices/{invoice.pk}/print/")
    html = page.content.decode()
    assert page.status_code == 200 and invoice.number and invoice.number in html
    assert "@media print" in html and "30.00 EUR" in html

    changelist = "/admin/billing/invoice/"
    response = admin_session.post(changelist, {"action": "finalize", ACTION_CHECKBOX_NAME: [invoice.pk]}, follow=True)
    assert "only drafts can be finalised" in response.content.decode()
    admin_session.post(changelist, {"action": "mark_paid", ACTION_CHECKBOX_NAME: [invoice.pk]})
    invoice.refresh_from_db()
    assert invoice.status == "paid"
    response = admin_session.post(changelist, {"action": "void", ACTION_CHECKBOX_NAME: [invoice.pk]}, follow=True)
    assert "only draft or open invoices can be voided" in response.content.decode()

    payment = Payment.objects.get()
    refund_url = "/admin/billing/payment/"
    form = admin_session.post(refund_url, {"action": "refund", ACTION_CHECKBOX_NAME: [payment.pk]})
    assert "refundable: <strong>30.00 EUR</strong>" in form.content.decode()
    too_much = admin_session.post(
        refund_url,
        {"action": "refund", ACTION_CHECKBOX_NAME: [payment.pk], "apply": "1", "amount": "31.00", "reason": "x"},
    )
    assert "left to refund" in too_much.content.decode()
    admin_session.post(
        refund_url,
        {"action": "refund", ACTION_CHECKBOX_NAME: [payment.pk], "apply": "1", "amount": "10.00", "reason": "goodwill"},
    )
    payment.refresh_from_db()
    assert payment.amount_refunded == 1000
    assert CreditNote.objects.get().amount == 1000


def test_support_staff_cannot_finalise_or_refund(
    client: Any, django_user_model: Any, subscription: Subscription
) -> None:
    support = django_user_model.objects.create_user(email="support@ghostcrm.test", password="x" * 16, role="support")
    login_with_verified_otp(client, support)
    invoice = Invoice.objects.get()
    response = client.get("/admin/billing/invoice/")
    assert response.status_code == 200
    assert 'value="finalize"' not in response.content.decode()
    client.post("/admin/billing/invoice/", {"action": "mark_paid", ACTION_CHECKBOX_NAME: [invoice.pk]})
    invoice.refresh_from_db()
    assert invoice.status == "open"
    assert client.get("/admin/billing/revenuedashboard/").status_code == 200

    billing = django_user_model.objects.create_user(email="billing@ghostcrm.test", password="y" * 16, role="billing")
    login_with_verified_otp(client, billing)
    client.post("/admin/billing/invoice/", {"action": "mark_paid", ACTION_CHECKBOX_NAME: [invoice.pk]})
    invoice.refresh_from_db()
    assert invoice.status == "paid"


def test_starting_a_subscription_from_the_admin(admin_session: Any) -> None:
    make_plan("small", 1000, scheme="per_seat", seat_limit=5)
    organization = make_organization(name="Initech")
    plan = Plan.objects.get(code="small")
    form = {"organization": organization.pk, "plan": plan.pk, "seats": "6", "trial_days": "", "billing_email": ""}
    refused = admin_session.post("/admin/billing/subscription/add/", form)
    assert "allows at most 5 seats (asked for 6)" in refused.content.decode()
    assert not Subscription.objects.exists()
    created = admin_session.post("/admin/billing/subscription/add/", {**form, "seats": "3"})
    assert created.status_code == 302
    subscription = Subscription.objects.get()
    assert (subscription.seats, subscription.status) == (3, "active")
    assert Invoice.objects.get(subscription=subscription).total == 3000
    detail = admin_session.get(f"/admin/billing/subscription/{subscription.pk}/change/").content.decode()
    assert "Change plan or seats" in detail and "upcoming invoice" in detail.lower()
