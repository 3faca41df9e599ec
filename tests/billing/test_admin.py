"""The billing admin: plan prices checked against the currency, invoice actions, change plan with a preview,
refunds, the printable invoice, and role permissions."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from billing import selectors, services
from billing.models import CreditNote, Invoice, InvoiceLine, Payment, Plan, Product, Subscription, TaxRate
from billing.money import from_minor
from ghostcrm.audit.models import AuditEvent
from tests.billing.factories import ACTOR, make_organization, make_plan
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
    assert preview.status_code == 200
    assert "Invoice issued now on confirmation" in html
    assert "Unused time on Basic" in html
    assert "Remaining time on Pro" in html
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
    assert page.status_code == 200
    assert invoice.number
    assert invoice.number in html
    assert "@media print" in html
    assert "30.00 EUR" in html

    changelist = "/admin/billing/invoice/"
    finalize = {"action": "finalize", ACTION_CHECKBOX_NAME: [invoice.pk], "confirm": "1"}
    response = admin_session.post(changelist, finalize, follow=True)
    assert "only drafts can be finalised" in response.content.decode()
    admin_session.post(changelist, {"action": "mark_paid", ACTION_CHECKBOX_NAME: [invoice.pk], "confirm": "1"})
    invoice.refresh_from_db()
    assert invoice.status == "paid"
    void = {"action": "void", ACTION_CHECKBOX_NAME: [invoice.pk], "confirm": "1", "reason": ""}
    response = admin_session.post(changelist, void, follow=True)
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
    client.post("/admin/billing/invoice/", {"action": "mark_paid", ACTION_CHECKBOX_NAME: [invoice.pk], "confirm": "1"})
    invoice.refresh_from_db()
    assert invoice.status == "open"
    assert client.get("/admin/billing/revenuedashboard/").status_code == 200

    billing = django_user_model.objects.create_user(email="billing@ghostcrm.test", password="y" * 16, role="billing")
    login_with_verified_otp(client, billing)
    client.post("/admin/billing/invoice/", {"action": "mark_paid", ACTION_CHECKBOX_NAME: [invoice.pk], "confirm": "1"})
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
    assert "Change plan or seats" in detail
    assert "upcoming invoice" in detail.lower()


def staff(client: Any, django_user_model: Any, role: str) -> Any:
    user = django_user_model.objects.create_user(email=f"{role}@ghostcrm.test", password="z" * 16, role=role)
    return login_with_verified_otp(client, user)


def test_support_sees_billing_but_changes_nothing(
    client: Any, django_user_model: Any, subscription: Subscription
) -> None:
    support = staff(client, django_user_model, "support")
    invoice = Invoice.objects.get()
    services.invoice_mark_paid(invoice_id=invoice.pk, actor=ACTOR)
    payment = Payment.objects.get()
    payments = support.get("/admin/billing/payment/").content.decode()
    assert 'value="refund"' not in payments
    support.post(
        "/admin/billing/payment/",
        {"action": "refund", ACTION_CHECKBOX_NAME: [payment.pk], "apply": "1", "amount": "1.00", "reason": "x"},
    )
    assert support.get(f"/admin/billing/subscription/{subscription.pk}/change-plan/").status_code == 403
    assert support.get("/admin/billing/subscription/add/").status_code == 403
    assert 'value="replay"' not in support.get("/admin/billing/webhookevent/").content.decode()
    assert 'value="credit_note"' not in support.get("/admin/billing/invoice/").content.decode()
    assert support.get(f"/billing/invoices/{invoice.pk}/print/").status_code == 200
    payment.refresh_from_db()
    assert payment.amount_refunded == 0
    assert not CreditNote.objects.exists()

    billing = staff(client, django_user_model, "billing")
    assert billing.get(f"/admin/billing/subscription/{subscription.pk}/change-plan/").status_code == 200
    billing.post(
        "/admin/billing/payment/",
        {"action": "refund", ACTION_CHECKBOX_NAME: [payment.pk], "apply": "1", "amount": "1.00", "reason": "x"},
    )
    payment.refresh_from_db()
    assert payment.amount_refunded == 100


def test_issued_invoices_payments_and_subscriptions_cannot_be_deleted(
    client: Any, django_user_model: Any, subscription: Subscription
) -> None:
    billing = staff(client, django_user_model, "billing")
    issued = Invoice.objects.get()
    payment = services.invoice_mark_paid(invoice_id=issued.pk, actor=ACTOR)
    draft = services.invoice_draft_create(
        organization_id=subscription.customer.organization_id,
        currency="EUR",
        lines=[services.LineInput(description="Setup", amount="10.00")],
        actor=ACTOR,
    )
    assert billing.get(f"/admin/billing/invoice/{issued.pk}/delete/").status_code == 403
    assert billing.get(f"/admin/billing/payment/{payment.pk}/delete/").status_code == 403
    assert billing.get(f"/admin/billing/subscription/{subscription.pk}/delete/").status_code == 403
    assert billing.get(f"/admin/billing/customer/{subscription.customer_id}/delete/").status_code == 403
    assert 'value="delete_selected"' not in billing.get("/admin/billing/invoice/").content.decode()
    assert billing.post(f"/admin/billing/invoice/{draft.pk}/delete/", {"post": "yes"}).status_code == 302
    assert list(Invoice.objects.values_list("pk", flat=True)) == [issued.pk]


def test_changelists_make_a_fixed_number_of_queries(admin_session: Any, django_assert_max_num_queries: Any) -> None:
    tiers = [(5, 1000, 0), (None, 800, 0)]
    make_plan("grad", 0, scheme="tiered", tiers_mode="graduated", tiers=tiers)
    pages = (
        "subscription", "invoice", "payment", "creditnote", "customer", "usagereading", "plan", "webhookevent"
    )  # fmt: skip

    def add_customer() -> None:
        subscription = services.subscription_create(
            organization_id=make_organization().pk, plan_code="grad", seats=7, actor=ACTOR
        )
        invoice = Invoice.objects.get(subscription=subscription)
        services.credit_note_create(invoice_id=invoice.pk, amount=100, reason="goodwill", actor=ACTOR)
        services.invoice_mark_paid(invoice_id=invoice.pk, actor=ACTOR)

    add_customer()
    counts = {}
    for page in pages:
        with CaptureQueriesContext(connection) as one:
            assert admin_session.get(f"/admin/billing/{page}/").status_code == 200
        counts[page] = len(one)
    for _ in range(4):
        add_customer()
    for page in pages:  # five rows cost what one row did: no query per row
        with django_assert_max_num_queries(counts[page]):
            assert admin_session.get(f"/admin/billing/{page}/").status_code == 200


def plan_change_form(plan: Plan, **changes: Any) -> dict[str, Any]:
    tiers = list(plan.tiers.all())
    form = {
        "code": plan.code, "name": plan.name, "product": plan.product_id, "active": "on", "currency": plan.currency,
        "interval": plan.interval, "scheme": plan.scheme, "price": str(from_minor(plan.unit_amount, plan.currency)),
        "tiers_mode": plan.tiers_mode, "trial_days": "0",
        "tiers-TOTAL_FORMS": str(len(tiers)), "tiers-INITIAL_FORMS": str(len(tiers)), "tiers-MIN_NUM_FORMS": "0",
        "tiers-MAX_NUM_FORMS": "1000",
    }  # fmt: skip
    for i, tier in enumerate(tiers):
        form |= {
            f"tiers-{i}-id": tier.pk, f"tiers-{i}-plan": plan.pk, f"tiers-{i}-up_to": tier.up_to or "",
            f"tiers-{i}-unit_price": str(from_minor(tier.unit_amount, plan.currency)),
            f"tiers-{i}-flat_fee": str(from_minor(tier.flat_amount, plan.currency)),
        }  # fmt: skip
    return form | changes


def test_a_plan_in_use_keeps_its_price(admin_session: Any, subscription: Subscription) -> None:
    basic = Plan.objects.get(code="basic")
    url = f"/admin/billing/plan/{basic.pk}/change/"
    refused = admin_session.post(url, plan_change_form(basic, price="35.00"))
    assert refused.status_code == 200
    assert "its price cannot change" in refused.content.decode()
    refused = admin_session.post(url, plan_change_form(basic, interval="year"))
    assert "its price cannot change" in refused.content.decode()
    basic.refresh_from_db()
    assert (basic.unit_amount, basic.interval) == (3000, "month")
    renamed = admin_session.post(url, plan_change_form(basic, name="Basic 2026", price="30"))
    assert renamed.status_code == 302
    assert Plan.objects.get(code="basic").name == "Basic 2026"


def test_tier_prices_are_typed_in_major_units_and_checked(admin_session: Any) -> None:
    product = Product.objects.get_or_create(name="GhostCRM")[0]
    form = plan_form("team", "0") | {"scheme": "tiered", "tiers_mode": "volume", "tiers-TOTAL_FORMS": "2"}
    form |= {"tiers-0-up_to": "10", "tiers-0-unit_price": "12.50", "tiers-0-flat_fee": "",
             "tiers-1-up_to": "", "tiers-1-unit_price": "9.995", "tiers-1-flat_fee": "0"}  # fmt: skip
    refused = admin_session.post("/admin/billing/plan/add/", form)
    assert "9.995 has more decimals than EUR allows (2)." in refused.content.decode()
    assert not Plan.objects.exists()
    bounded = admin_session.post("/admin/billing/plan/add/", form | {"tiers-1-up_to": "20", "tiers-1-unit_price": "9"})
    assert "exactly one of them without" in bounded.content.decode()
    flat = admin_session.post("/admin/billing/plan/add/", form | {"scheme": "flat", "tiers-1-unit_price": "9.99"})
    assert "Only tiered plans have tiers" in flat.content.decode()
    assert admin_session.post("/admin/billing/plan/add/", form | {"tiers-1-unit_price": "9.99"}).status_code == 302
    plan = Plan.objects.get(code="team", product=product)
    assert list(plan.tiers.values_list("up_to", "unit_amount", "flat_amount")) == [(10, 1250, 0), (None, 999, 0)]

    services.subscription_create(organization_id=make_organization().pk, plan_code="team", seats=3, actor=ACTOR)
    url = f"/admin/billing/plan/{plan.pk}/change/"
    unchanged = admin_session.post(url, plan_change_form(plan, name="Team"))
    assert unchanged.status_code == 302
    changed = plan_change_form(plan) | {"tiers-0-unit_price": "13.00"}
    assert "its price cannot change" in admin_session.post(url, changed).content.decode()
    assert plan.tiers.get(up_to=10).unit_amount == 1250


def test_a_tax_rate_on_invoices_keeps_its_percentage(admin_session: Any, subscription: Subscription) -> None:
    rate = TaxRate.objects.create(name="VAT", percentage="20", country="FR")
    url = f"/admin/billing/taxrate/{rate.pk}/change/"
    form = {"name": "VAT", "percentage": "19", "country": "FR", "active": "on"}
    assert admin_session.post(url, form).status_code == 302  # unused: may change
    services.invoice_draft_create(
        organization_id=subscription.customer.organization_id, currency="EUR", actor=ACTOR,
        lines=[services.LineInput(description="Setup", amount="10.00")],
    )  # fmt: skip

    InvoiceLine.objects.update(tax_rate=rate)
    refused = admin_session.post(url, form | {"percentage": "21"})
    assert "its percentage cannot change" in refused.content.decode()
    assert admin_session.post(url, form | {"name": "VAT FR"}).status_code == 302
    rate.refresh_from_db()
    assert (rate.name, str(rate.percentage)) == ("VAT FR", "19.0000")


def test_credit_note_action(admin_session: Any, subscription: Subscription) -> None:
    invoice = Invoice.objects.get()
    changelist = "/admin/billing/invoice/"
    page = admin_session.post(changelist, {"action": "credit_note", ACTION_CHECKBOX_NAME: [invoice.pk]})
    assert "still due: <strong>30.00 EUR</strong>" in page.content.decode()
    form = {"action": "credit_note", ACTION_CHECKBOX_NAME: [invoice.pk], "apply": "1", "reason": "goodwill"}
    assert "more decimals than EUR" in admin_session.post(changelist, form | {"amount": "1.005"}).content.decode()
    assert "still due" in admin_session.post(changelist, form | {"amount": "30.01"}).content.decode()
    admin_session.post(changelist, form | {"amount": "12.50"})
    invoice.refresh_from_db()
    assert (invoice.amount_credited, invoice.amount_remaining) == (1250, 1750)
    assert CreditNote.objects.get().number == f"GC-CN-{timezone.now().year}-000001"


def test_confirming_a_change_prorates_at_the_preview_moment(admin_session: Any, subscription: Subscription) -> None:
    services.subscription_cancel(subscription_id=subscription.pk, at_period_end=False, actor=ACTOR)
    subscription = services.subscription_create(  # ten days into its period: every minute changes the figures
        organization_id=subscription.customer.organization_id,
        plan_code="basic",
        actor=ACTOR,
        at=timezone.now() - dt.timedelta(days=10),
    )
    url = f"/admin/billing/subscription/{subscription.pk}/change-plan/"
    form = {"plan": Plan.objects.get(code="pro").pk, "seats": "1", "proration_behavior": "always_invoice"}
    html = admin_session.post(url, {**form, "preview": "1"}).content.decode()
    match = re.search(r'name="proration_date" value="([^"]+)"', html)
    assert match is not None
    previewed = dt.datetime.fromisoformat(match.group(1))
    assert timezone.now() - dt.timedelta(minutes=1) < previewed <= timezone.now()

    stale = (timezone.now() - dt.timedelta(hours=2)).isoformat()
    refused = admin_session.post(url, {**form, "confirm": "1", "proration_date": stale})
    assert "more than an hour old" in refused.content.decode()
    refused = admin_session.post(url, {**form, "confirm": "1", "proration_date": "2026-01-01T00:00:00"})  # naive
    assert "not valid" in refused.content.decode()
    assert Subscription.objects.get(pk=subscription.pk).plan.code == "basic"

    # Confirmed a while later: the lines are those of the preview's moment, not of the confirmation's.
    earlier = previewed - dt.timedelta(minutes=20)
    expected, later = (
        selectors.subscription_change_preview(
            subscription_id=subscription.pk, plan_code="pro", proration_behavior="always_invoice", at=moment
        )
        for moment in (earlier, timezone.now())
    )
    assert [line.amount for line in expected.lines] != [line.amount for line in later.lines]
    done = admin_session.post(url, {**form, "confirm": "1", "proration_date": earlier.isoformat()})
    assert done.status_code == 302
    invoice = Invoice.objects.get(billing_reason="subscription_update")
    assert sorted(invoice.lines.values_list("amount", flat=True)) == sorted(line.amount for line in expected.lines)
    assert invoice.lines.filter(period_start=earlier).count() == 2


CLIENT = {"REMOTE_ADDR": "203.0.113.7", "HTTP_USER_AGENT": "QA-Browser/1.0 (billing)"}


def test_admin_billing_changes_are_audited_with_the_client_address(
    admin_session: Any, super_admin: Any, subscription: Subscription
) -> None:
    """The services the admin calls take the request down to their audit events (IP, user agent, request id)."""
    invoice = Invoice.objects.get()
    changelist = "/admin/billing/invoice/"
    admin_session.post(
        changelist, {"action": "mark_paid", ACTION_CHECKBOX_NAME: [invoice.pk], "confirm": "1"}, **CLIENT
    )
    invoice.refresh_from_db()
    assert invoice.status == "paid"
    payment = Payment.objects.get()
    admin_session.post(
        "/admin/billing/payment/",
        {"action": "refund", ACTION_CHECKBOX_NAME: [payment.pk], "apply": "1", "amount": "1.00", "reason": "x"},
        **CLIENT,
    )
    admin_session.post(
        "/admin/billing/subscription/",
        {"action": "cancel_at_end", ACTION_CHECKBOX_NAME: [subscription.pk], "confirm": "1"},
        **CLIENT,
    )
    actions = ["billing.payment.record", "billing.invoice.pay", "billing.payment.refund", "billing.credit_note.create",
               "billing.subscription.cancel"]  # fmt: skip
    events = AuditEvent.objects.filter(action__in=actions, ip_address="203.0.113.7")
    assert sorted(events.values_list("action", flat=True)) == sorted(actions)
    for event in events:
        assert event.user_agent == "QA-Browser/1.0 (billing)", event.action
        assert event.request_id, event.action
        assert (event.actor_type, event.actor_id) == ("user", str(super_admin.pk)), event.action
    # The subscription's own invoice, made by a service called outside any request, has no address.
    assert AuditEvent.objects.get(action="billing.invoice.finalize").ip_address is None


def test_invoice_actions_ask_for_confirmation_first(admin_session: Any, subscription: Subscription) -> None:
    invoice = Invoice.objects.get()  # open, 30.00 EUR
    changelist = "/admin/billing/invoice/"
    for action, words in (
        ("mark_paid", "manual payment of the whole remaining amount"),
        ("mark_uncollectible", "written off as uncollectible"),
        ("void", "This cannot be undone"),
        ("finalize", "A number cannot be taken back"),
    ):
        page = admin_session.post(changelist, {"action": action, ACTION_CHECKBOX_NAME: [invoice.pk]})
        html = page.content.decode()
        assert page.status_code == 200, action
        assert words in html, action
        assert invoice.number in html
        assert "30.00 EUR" in html
        invoice.refresh_from_db()
        assert invoice.status == "open", action  # nothing happened yet
    finalize_page = admin_session.post(changelist, {"action": "finalize", ACTION_CHECKBOX_NAME: [invoice.pk]})
    assert "skipped: it is open" in finalize_page.content.decode()
    assert 'name="confirm"' not in finalize_page.content.decode()  # nothing selected can be finalised

    void_page = admin_session.post(changelist, {"action": "void", ACTION_CHECKBOX_NAME: [invoice.pk]}).content.decode()
    assert 'name="confirm"' in void_page
    assert 'name="reason"' in void_page
    done = admin_session.post(
        changelist, {"action": "void", ACTION_CHECKBOX_NAME: [invoice.pk], "confirm": "1", "reason": "sent twice"}
    )
    assert done.status_code == 302
    invoice.refresh_from_db()
    assert invoice.status == "void"
    assert AuditEvent.objects.get(action="billing.invoice.void").message == "sent twice"


def test_subscription_cancel_and_renew_ask_for_confirmation(admin_session: Any, subscription: Subscription) -> None:
    changelist = "/admin/billing/subscription/"
    page = admin_session.post(changelist, {"action": "cancel_at_end", ACTION_CHECKBOX_NAME: [subscription.pk]})
    assert "ends at the end of its current period" in page.content.decode()
    assert "Globex" in page.content.decode()
    subscription.refresh_from_db()
    assert not subscription.cancel_at_period_end
    renew = admin_session.post(changelist, {"action": "renew_now", ACTION_CHECKBOX_NAME: [subscription.pk]})
    assert "nothing due: its period has not ended" in renew.content.decode()
    admin_session.post(changelist, {"action": "cancel_at_end", ACTION_CHECKBOX_NAME: [subscription.pk], "confirm": "1"})
    subscription.refresh_from_db()
    assert subscription.cancel_at_period_end


def one_off(organization: Any, **overrides: Any) -> dict[str, Any]:
    form = {
        "organization": organization.pk, "currency": "", "tax_rate": "", "memo": "",
        "lines-TOTAL_FORMS": "3", "lines-INITIAL_FORMS": "0", "lines-MIN_NUM_FORMS": "0", "lines-MAX_NUM_FORMS": "1000",
        "lines-0-description": "Onboarding workshop", "lines-0-amount": "450.00", "lines-0-quantity": "2",
        "lines-1-description": "Data import", "lines-1-amount": "99.99", "lines-1-quantity": "1",
        "lines-2-description": "", "lines-2-amount": "", "lines-2-quantity": "1",
    }  # fmt: skip
    return {**form, **overrides}


def test_a_one_off_invoice_from_the_admin(admin_session: Any, subscription: Subscription) -> None:
    organization = subscription.customer.organization
    changelist = admin_session.get("/admin/billing/invoice/").content.decode()
    assert "New one-off invoice" in changelist
    assert "/admin/billing/invoice/add/" in changelist
    assert admin_session.get("/admin/billing/invoice/add/").status_code == 200
    before = Invoice.objects.count()

    scaled = admin_session.post("/admin/billing/invoice/add/", one_off(organization, **{"lines-1-amount": "99.999"}))
    assert "99.999 has more decimals than EUR allows (2)." in scaled.content.decode()
    assert "Please correct the errors in the lines below." in scaled.content.decode()
    unknown = admin_session.post("/admin/billing/invoice/add/", one_off(organization, currency="EUX"))
    assert "is not a known ISO 4217 currency code" in unknown.content.decode()
    yen = admin_session.post("/admin/billing/invoice/add/", one_off(organization, currency="jpy"))
    assert "more decimals than JPY allows (0)" in yen.content.decode()
    empty = one_off(organization, **{"lines-0-description": "", "lines-0-amount": "", "lines-0-quantity": "1",
                                     "lines-1-description": "", "lines-1-amount": ""})  # fmt: skip
    assert "Add at least one line." in admin_session.post("/admin/billing/invoice/add/", empty).content.decode()
    lonely = make_organization(name="No subscription")
    no_currency = admin_session.post("/admin/billing/invoice/add/", one_off(lonely))
    assert "has no current subscription to take the currency from" in no_currency.content.decode()
    assert Invoice.objects.count() == before  # nothing half-written

    more = admin_session.post("/admin/billing/invoice/add/", one_off(organization, more_lines="1")).content.decode()
    assert 'value="Onboarding workshop"' in more
    assert 'name="lines-4-description"' in more
    assert "errornote" not in more

    rate = TaxRate.objects.create(name="VAT", percentage="20.00", country="FR")
    created = admin_session.post("/admin/billing/invoice/add/", one_off(organization, tax_rate=rate.pk))
    assert created.status_code == 302
    invoice = Invoice.objects.get(billing_reason="manual")
    assert (invoice.status, invoice.currency, invoice.customer_id) == ("draft", "EUR", subscription.customer_id)
    lines = sorted(invoice.lines.values_list("description", "quantity", "amount", "tax_amount", "tax_rate_id"))
    assert lines == [("Data import", 1, 9999, 2000, rate.pk), ("Onboarding workshop", 2, 90000, 18000, rate.pk)]
    assert AuditEvent.objects.filter(action="billing.invoice.create", target_id=str(invoice.pk)).exists()
    usd = admin_session.post("/admin/billing/invoice/add/", one_off(lonely, currency="usd"))
    assert usd.status_code == 302
    assert Invoice.objects.filter(billing_reason="manual", currency="USD", customer__organization=lonely).exists()


def test_support_cannot_create_one_off_invoices(
    client: Any, django_user_model: Any, subscription: Subscription
) -> None:
    support = staff(client, django_user_model, "support")
    assert support.get("/admin/billing/invoice/add/").status_code == 403
    assert "New one-off invoice" not in support.get("/admin/billing/invoice/").content.decode()
