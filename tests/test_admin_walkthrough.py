"""What a super admin sees on pages a browser walkthrough found wrong: no dead "View site" link, money on the
invoice and payment pages in major units with the currency, filters listing only currencies in use, custom
admin forms laid out like the admin's own, and lifecycle results worded as results."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME

from billing import services
from billing.models import Invoice
from tests.billing.conftest import ACTOR, make_organization

pytestmark = pytest.mark.django_db


def test_the_admin_has_no_view_site_link_to_a_missing_public_site(admin_session: Any) -> None:
    page = admin_session.get("/admin/").content.decode()
    assert "View site" not in page
    root = admin_session.get("/")  # no public site: the root address leads to the admin
    assert root.status_code == 302
    assert root["Location"] == "/admin/"


def test_invoice_and_payment_pages_show_money_in_major_units(admin_session: Any) -> None:
    organization = make_organization(name="Money Display Co")
    invoice = services.invoice_draft_create(
        organization_id=organization.pk,
        currency="EUR",
        lines=[
            services.LineInput(description="Workshop", amount="450.00"),
            services.LineInput(description="Import", amount="99.99"),
        ],
        actor=ACTOR,
    )
    invoice = services.invoice_finalize(invoice_id=invoice.pk, actor=ACTOR)
    assert invoice.total == 54999
    page = admin_session.get(f"/admin/billing/invoice/{invoice.pk}/change/").content.decode()
    assert "549.99 EUR" in page
    assert ">54999<" not in page
    payment = services.invoice_mark_paid(invoice_id=invoice.pk, actor=ACTOR)
    page = admin_session.get(f"/admin/billing/payment/{payment.pk}/change/").content.decode()
    assert "549.99 EUR" in page
    assert ">54999<" not in page
    # Still read-only: a posted total changes nothing.
    admin_session.post(f"/admin/billing/invoice/{invoice.pk}/change/", {"total": "1"})
    assert Invoice.objects.get(pk=invoice.pk).total == 54999


def test_currency_filters_list_only_currencies_in_use(admin_session: Any) -> None:
    organization = make_organization(name="Filter Co")
    services.invoice_draft_create(
        organization_id=organization.pk,
        currency="JPY",
        lines=[services.LineInput(description="Setup", amount="1000")],
        actor=ACTOR,
    )
    page = admin_session.get("/admin/billing/invoice/").content.decode()
    assert "currency=JPY" in page
    assert "currency=AFN" not in page  # not all of ISO 4217
    assert "currency=AFN" not in admin_session.get("/admin/billing/plan/").content.decode()


@pytest.mark.parametrize(
    "url",
    ["/admin/accounts/invitation/add/", "/admin/billing/subscription/add/"],
)
def test_custom_admin_forms_use_the_admin_form_layout(admin_session: Any, url: str) -> None:
    page = admin_session.get(url).content.decode()
    assert "admin/css/forms.css" in page
    assert 'class="flex-container' in page
    assert 'class="breadcrumbs"' in page


def test_invitation_form_errors_are_announced_and_nothing_is_sent(admin_session: Any, mailoutbox: Any) -> None:
    response = admin_session.post(
        "/admin/accounts/invitation/add/", {"email": "x@ghostcrm.test", "role": "tenant_admin"}
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert "Please correct the error below." in page
    assert mailoutbox == []


def test_lifecycle_results_are_worded_as_results_and_refusals_say_why(admin_session: Any) -> None:
    active = make_organization(name="Active Co")
    failed = make_organization(name="Failed Co", status="failed")
    response = admin_session.post(
        "/admin/organizations/organization/",
        {"action": "retry_selected", ACTION_CHECKBOX_NAME: [active.pk, failed.pk], "confirm": "yes", "reason": "qa"},
        follow=True,
    )
    page = response.content.decode()
    assert "Provisioning starts again for: Failed Co." in page
    assert "Retry:" not in page
    assert "Active Co: Organisation" in page
    assert "only failed, pending, provisioning or deprovisioning organisations can be retried" in page


def test_signing_out_lands_on_a_page_that_offers_to_sign_in_again(admin_session: Any) -> None:
    response = admin_session.post("/admin/logout/")
    page = response.content.decode()
    assert response.status_code == 200
    assert "You are signed out of the GhostCRM control plane." in page
    assert 'href="/accounts/login/"' in page
    assert admin_session.get("/admin/").status_code == 302


def test_the_admin_links_to_sign_in_security_and_the_api_docs(admin_session: Any) -> None:
    page = admin_session.get("/admin/").content.decode()
    assert 'href="/accounts/security/"' in page
    assert 'href="/api/docs/"' in page
    assert admin_session.get("/accounts/security/").status_code == 200
    assert admin_session.get("/api/docs/").status_code == 200


def test_third_party_apps_have_readable_names_on_the_admin_index(admin_session: Any) -> None:
    page = admin_session.get("/admin/").content.decode()
    for name in ("Job queues", "Authenticator apps", "Backup codes", "Sign-in lockout"):
        assert name in page
    for label in ("Django_Rq", "Otp_Totp", "Otp_Static", ">Axes<"):
        assert label not in page


def test_an_organisation_page_offers_the_lifecycle_moves_its_status_allows(admin_session: Any) -> None:
    active = make_organization(name="Buttons Co")
    page = admin_session.get(f"/admin/organizations/organization/{active.pk}/change/").content.decode()
    assert 'value="suspend_selected"' in page and 'value="deprovision_selected"' in page
    assert 'value="resume_selected"' not in page and 'value="retry_selected"' not in page
    failed = make_organization(name="Failed Buttons Co", status="failed")
    page = admin_session.get(f"/admin/organizations/organization/{failed.pk}/change/").content.decode()
    assert 'value="retry_selected"' in page and 'value="suspend_selected"' not in page
    # A button leads to the same confirmation page as the list action, and changes nothing by itself.
    response = admin_session.post(
        "/admin/organizations/organization/", {"action": "suspend_selected", ACTION_CHECKBOX_NAME: [active.pk]}
    )
    assert response.status_code == 200
    assert "Suspend 1 client organisation?" in response.content.decode()
    active.refresh_from_db()
    assert active.status == "active"


def test_an_organisation_page_has_no_lifecycle_buttons_without_the_permission(
    client: Any, django_user_model: Any
) -> None:
    from tests.conftest import login_with_verified_otp

    viewer = django_user_model.objects.create_user(
        email="billing@ghostcrm.test", password="correct horse battery staple", role="billing"
    )
    login_with_verified_otp(client, viewer)
    organization = make_organization(name="No Buttons Co")
    response = client.get(f"/admin/organizations/organization/{organization.pk}/change/")
    assert response.status_code == 200
    assert 'value="suspend_selected"' not in response.content.decode()


def test_error_pages_are_the_products_own_when_debug_is_off(client: Any) -> None:
    from django.template.loader import render_to_string
    from django.test import override_settings

    with override_settings(DEBUG=False):
        response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert "There is nothing at this address." in response.content.decode()
    assert "Something went wrong on our side" in render_to_string("500.html")


def test_service_key_form_names_the_scopes_and_gives_one_error_for_none(admin_session: Any) -> None:
    page = admin_session.get("/admin/tenants/servicekey/add/").content.decode()
    assert "(organizations:lifecycle)" in page
    response = admin_session.post("/admin/tenants/servicekey/add/", {"name": "no-scopes"})
    page = response.content.decode()
    assert response.status_code == 200
    assert page.count("Give at least one scope") == 1
    assert "This field is required." not in page
    response = admin_session.post(
        "/admin/tenants/servicekey/add/", {"name": "reader", "scopes": ["organizations:read"]}, follow=True
    )
    assert response.status_code == 200 and "Copy it now" in response.content.decode()
