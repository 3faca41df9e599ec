"""An invoice's admin page is read-only (no Save) and carries its state's actions as buttons; each goes through
the action's confirmation (or form) page and comes back to the invoice."""

from __future__ import annotations

import re
from typing import Any

import pytest

from billing import selectors, services
from billing.models import CreditNote, Invoice, Payment
from tests.billing.factories import ACTOR, make_organization, make_plan
from tests.conftest import login_with_verified_otp

pytestmark = pytest.mark.django_db


def buttons(html: str) -> list[tuple[str, str]]:
    """(action, label) of the state buttons on an invoice page, in order."""
    forms = re.findall(r'<form method="post" action="[^"]+" class="gc-state-action">(.*?)</form>', html, re.S)
    found = []
    for form in forms:
        action = re.search(r'name="action" value="([^"]+)"', form)
        label = re.search(r"<button[^>]*>([^<]+)</button>", form)
        assert action
        assert label
        found.append((action.group(1), label.group(1).strip()))
    return found


def draft() -> Invoice:
    return services.invoice_draft_create(
        organization_id=make_organization(name="Initech").pk, currency="EUR", actor=ACTOR,
        lines=[services.LineInput(description="Setup", amount="120.00")],
    )  # fmt: skip


def page(session: Any, invoice: Invoice) -> str:
    response = session.get(f"/admin/billing/invoice/{invoice.pk}/change/")
    assert response.status_code == 200
    return str(response.content.decode())


def test_the_page_has_no_save_and_the_states_buttons(admin_session: Any) -> None:
    invoice = draft()
    html = page(admin_session, invoice)
    assert 'name="_save"' not in html
    assert 'name="_continue"' not in html
    assert 'name="_addanother"' not in html
    assert buttons(html) == [("finalize", "Finalise…"), ("void", "Void…")]
    assert "Print" in html

    invoice = services.invoice_finalize(invoice_id=invoice.pk, actor=ACTOR)
    assert buttons(page(admin_session, invoice)) == [
        ("mark_paid", "Mark paid…"), ("credit_note", "Issue a credit note…"), ("void", "Void…"),
        ("mark_uncollectible", "Mark uncollectible…"),
    ]  # fmt: skip
    services.invoice_mark_paid(invoice_id=invoice.pk, actor=ACTOR)
    assert buttons(page(admin_session, invoice)) == [("refund", "Refund 120.00 EUR…")]
    services.payment_refund(payment_id=Payment.objects.get().pk, actor=ACTOR, reason="goodwill")
    assert buttons(page(admin_session, invoice)) == []  # nothing left to refund
    # Saving the page directly changes nothing (a read-only page refuses a forged POST).
    refused = admin_session.post(f"/admin/billing/invoice/{invoice.pk}/change/", {"memo": "edited"})
    assert refused.status_code == 403
    assert Invoice.objects.get(pk=invoice.pk).memo == ""


def test_a_button_confirms_then_comes_back_to_the_invoice(admin_session: Any) -> None:
    invoice = draft()
    back = f"/admin/billing/invoice/{invoice.pk}/change/"
    clicked = admin_session.post(
        "/admin/billing/invoice/", {"action": "finalize", "_selected_action": invoice.pk, "_next": back}
    )
    html = clicked.content.decode()
    assert clicked.status_code == 200
    assert "Finalise: are you sure?" in html
    assert f'name="_next" value="{back}"' in html
    assert Invoice.objects.get(pk=invoice.pk).status == "draft"  # nothing happens before the confirmation

    confirmed = admin_session.post(
        "/admin/billing/invoice/",
        {"action": "finalize", "_selected_action": invoice.pk, "_next": back, "confirm": "1"},
    )
    assert confirmed.status_code == 302
    assert confirmed["Location"] == back
    assert Invoice.objects.get(pk=invoice.pk).status == "open"
    assert "1 invoice(s) finalised." in admin_session.get(back).content.decode()

    # A form action (credit note) carries the way back through its form.
    form = admin_session.post(
        "/admin/billing/invoice/", {"action": "credit_note", "_selected_action": invoice.pk, "_next": back}
    )
    assert f'name="_next" value="{back}"' in form.content.decode()
    issued = admin_session.post(
        "/admin/billing/invoice/",
        {"action": "credit_note", "_selected_action": invoice.pk, "_next": back, "apply": "1", "amount": "20.00",
         "reason": "discount"},
    )  # fmt: skip
    assert issued.status_code == 302
    assert issued["Location"] == back
    assert CreditNote.objects.get().amount == 2_000

    # Elsewhere than this site: back to the list, as without a page.
    elsewhere = admin_session.post(
        "/admin/billing/invoice/",
        {"action": "mark_paid", "_selected_action": invoice.pk, "_next": "https://evil.example/", "confirm": "1"},
    )
    assert elsewhere.status_code == 302
    assert elsewhere["Location"] == "/admin/billing/invoice/"
    assert Invoice.objects.get(pk=invoice.pk).status == "paid"


def test_support_sees_the_page_without_buttons(client: Any, django_user_model: Any) -> None:
    make_plan("basic", 3_000)
    organization = make_organization()
    services.subscription_create(organization_id=organization.pk, plan_code="basic", actor=ACTOR)
    invoice = Invoice.objects.get()
    support = django_user_model.objects.create_user(email="support@ghostcrm.test", password="x" * 16, role="support")
    login_with_verified_otp(client, support)
    html = page(client, invoice)
    assert buttons(html) == []
    assert 'name="_save"' not in html
    assert selectors.invoice_actions(invoice) == ["mark_paid", "credit_note", "void", "mark_uncollectible"]


def test_billing_pages_spell_finalised_and_organisation(admin_session: Any) -> None:
    invoice = services.invoice_finalize(invoice_id=draft().pk, actor=ACTOR)
    html = page(admin_session, invoice)
    assert "Finalised at" in html
    assert "Finalized" not in html
    for url in ("/admin/billing/customer/", f"/admin/billing/customer/{invoice.customer_id}/change/",
                "/admin/billing/usagereading/", "/admin/billing/subscription/start/"):  # fmt: skip
        shown = admin_session.get(url).content.decode()
        assert "Organization" not in shown, url
        assert "rganisation" in shown, url
