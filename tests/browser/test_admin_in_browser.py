"""A super admin's day in a real browser: sign-in with TOTP enrolment, provisioning watched on the dashboard, a
failed organisation retried, suspend and resume, a service key used against the API then revoked, an invitation
accepted in a second browser, and the revenue dashboard with data.

Selectors are labels, roles, URLs and Django admin's own stable ids (``#id_<field>``, ``select[name=action]``),
not page wording other work may change."""

from __future__ import annotations

import re
from typing import Any

import pyotp
import pytest
from django.core import mail
from django_otp.plugins.otp_totp.models import TOTPDevice

from billing import services as billing
from billing.models import Invoice
from ghostcrm.accounts.models import Invitation
from ghostcrm.audit.services import Actor
from ghostcrm.organizations.models import Organization
from tenants import services
from tenants.keys import ServiceKey
from tests.billing.conftest import make_organization, make_plan
from tests.browser.conftest import BROWSER_DB, PASSWORD, Session, next_code, sign_in
from tests.processes import wait_for

pytestmark = [BROWSER_DB, pytest.mark.usefixtures("provisioning_worker")]
Status = Organization.Status
ACTOR = Actor.system("browser-test")
KEY_PATTERN = re.compile(r"gcrm_[0-9a-f]{8}_[A-Za-z0-9_-]{43}")


def status_on_page(session: Session, organization: Organization) -> str:
    session.go(f"/admin/organizations/organization/{organization.pk}/change/")
    return session.page.locator(".gc-status").first.get_attribute("data-status") or ""


def wait_until_active(organization: Organization, *, timeout: float = 90) -> None:
    wait_for(
        lambda: Organization.objects.filter(pk=organization.pk, status=Status.ACTIVE).exists(),
        timeout=timeout,
        what=f"{organization.name} to become active",
        interval=0.25,
    )


def dashboard_count(session: Session, status: str) -> int:
    session.go("/admin/organizations/organization/dashboard/")
    card = session.page.locator("#gc-counts .gc-card").filter(has=session.page.locator(f'[data-status="{status}"]'))
    return int(card.locator(".gc-figure").inner_text()) if card.count() else 0


def run_list_action(session: Session, organization: Organization, action: str, reason: str) -> None:
    """Tick one organisation in the list, pick an action, confirm it with a reason."""
    session.go(f"/admin/organizations/organization/?q={organization.slug}")
    session.page.locator(f'input[name="_selected_action"][value="{organization.pk}"]').check()
    session.page.locator('select[name="action"]').select_option(action)
    session.page.locator('button[name="index"], input[name="index"]').first.click()
    session.page.get_by_label(re.compile("Reason")).fill(reason)
    session.shot(f"confirm-{action}")
    session.page.locator('input[type="submit"][value^="Yes"]').click()
    session.page.wait_for_url(re.compile(r"/admin/organizations/organization/"))


def test_sign_in_enrols_an_authenticator_then_signs_in_again_with_a_code(
    open_session: Any, django_user_model: Any
) -> None:
    user = django_user_model.objects.create_superuser(email="new-root@ghostcrm.test", password=PASSWORD)
    session: Session = open_session()
    session.go("/admin/")
    session.page.get_by_label("E-mail address").fill(user.email)
    session.page.get_by_label("Password").fill(PASSWORD)
    session.shot("sign-in")
    session.page.get_by_role("button", name="Continue").click()

    # No authenticator yet: enrolment shows a QR code and the key; pyotp plays the phone.
    session.page.wait_for_url("**/accounts/mfa/enrol/**")
    secret = session.page.locator("code.secret").inner_text().replace(" ", "")
    assert session.page.locator(".qr svg").count() == 1
    session.shot("mfa-enrol")
    totp = pyotp.TOTP(secret)
    session.page.get_by_label(re.compile("Code")).fill(totp.now())
    session.page.get_by_role("button", name=re.compile("Confirm")).click()

    codes = session.page.locator("ol.codes li")
    codes.first.wait_for()
    assert codes.count() == 10
    session.shot("backup-codes")
    session.page.get_by_role("link", name=re.compile("continue")).click()
    session.page.wait_for_url(re.compile(r"/admin/$"))
    assert TOTPDevice.objects.filter(user=user, confirmed=True).count() == 1

    # Sign out, then in again with a fresh code from the same authenticator.
    session.page.locator("#logout-form button, #logout-form input[type=submit]").first.click()
    session.page.wait_for_load_state()
    sign_in(session, user.email, totp, code=next_code(totp))
    session.shot("admin-index")
    assert session.page.locator("#site-name").is_visible()


def test_an_organisation_created_in_the_admin_reaches_active_on_the_dashboard(admin_session: Session) -> None:
    page = admin_session.page
    before = dashboard_count(admin_session, Status.ACTIVE)
    admin_session.go("/admin/organizations/organization/add/")
    page.locator("#id_name").fill("Browser Made Ltd")
    page.locator("#id_admin_email").fill("owner@browser-made.test")
    admin_session.shot("organisation-add")
    page.locator('input[name="_save"]').click()
    organization = wait_for(
        lambda: Organization.objects.filter(name="Browser Made Ltd").first(), what="the organisation row"
    )
    wait_until_active(organization)
    # The dashboard shows it: one more active organisation, and its page says active.
    wait_for(lambda: dashboard_count(admin_session, Status.ACTIVE) == before + 1, what="the dashboard to count it")
    admin_session.shot("dashboard")
    assert status_on_page(admin_session, organization) == Status.ACTIVE
    admin_session.shot("organisation-active")


def test_a_failed_organisation_shows_its_error_and_a_retry_makes_it_active(admin_session: Session) -> None:
    organization = Organization(name="Broken Start", slug="broken-start", admin_email="it@broken-start.test")
    organization.full_clean()
    organization.status = Status.FAILED
    organization.last_error = "Template 002 failed: relation crm_channels already exists"
    organization.save()

    admin_session.go("/admin/organizations/organization/dashboard/")
    row = admin_session.page.locator("#gc-failures tr").filter(has_text="Broken Start")
    assert "relation crm_channels already exists" in row.inner_text()
    admin_session.shot("dashboard-failure")
    admin_session.go(f"/admin/organizations/organization/{organization.pk}/change/")
    assert "relation crm_channels already exists" in admin_session.page.content()

    admin_session.go("/admin/organizations/organization/dashboard/")
    admin_session.page.locator("#gc-failures tr").filter(has_text="Broken Start").get_by_role(
        "button", name=re.compile("Retry")
    ).click()
    wait_until_active(organization)
    organization.refresh_from_db()
    assert organization.last_error == ""
    assert status_on_page(admin_session, organization) == Status.ACTIVE


def test_suspend_then_resume_an_organisation(admin_session: Session) -> None:
    organization = services.organization_request(name="Pause Co", admin_email="ops@pause.test", actor=ACTOR)
    wait_until_active(organization)

    run_list_action(admin_session, organization, "suspend_selected", "unpaid invoice")
    organization.refresh_from_db()
    assert organization.status == Status.SUSPENDED
    assert status_on_page(admin_session, organization) == Status.SUSPENDED
    admin_session.shot("organisation-suspended")

    run_list_action(admin_session, organization, "resume_selected", "invoice paid")
    organization.refresh_from_db()
    assert organization.status == Status.ACTIVE
    assert status_on_page(admin_session, organization) == Status.ACTIVE


def test_a_service_key_is_shown_once_used_against_the_api_and_revoked(admin_session: Session) -> None:
    page = admin_session.page
    admin_session.go("/admin/tenants/servicekey/add/")
    page.locator("#id_name").fill("browser-signup")
    page.get_by_label(re.compile(r"organizations:read")).check()
    page.locator('input[name="_save"]').click()
    found = KEY_PATTERN.search(page.content())
    assert found, "the new key is shown on the page after saving"
    raw = found.group(0)
    admin_session.shot("service-key-created")
    assert ServiceKey.objects.count() == 1

    # Shown once: reloading the page neither shows it again nor makes a second key.
    page.reload()
    assert raw not in page.content()
    assert ServiceKey.objects.count() == 1

    api = admin_session.context.request
    answer = api.get(admin_session.base + "/api/v1/organizations/", headers={"Authorization": f"Bearer {raw}"})
    assert answer.status == 200, answer.text()

    key = ServiceKey.objects.get()
    admin_session.go("/admin/tenants/servicekey/")
    page.locator(f'input[name="_selected_action"][value="{key.pk}"]').check()
    page.locator('select[name="action"]').select_option("revoke_selected")
    page.locator('button[name="index"], input[name="index"]').first.click()
    wait_for(lambda: ServiceKey.objects.filter(pk=key.pk, revoked_at__isnull=False).exists(), what="the revocation")
    admin_session.shot("service-key-revoked")
    refused = api.get(admin_session.base + "/api/v1/organizations/", headers={"Authorization": f"Bearer {raw}"})
    assert refused.status == 401


def test_an_invited_user_accepts_in_a_second_browser_and_enrols(admin_session: Session, open_session: Any) -> None:
    page = admin_session.page
    admin_session.go("/admin/accounts/invitation/add/")
    page.locator("#id_email").fill("helper@ghostcrm.test")
    page.locator("#id_role").select_option(label="Support")
    admin_session.shot("invitation-form")
    page.get_by_role("button", name=re.compile("invitation", re.I)).click()
    page.wait_for_url("**/admin/accounts/invitation/")
    link = wait_for(
        lambda: next((m for m in mail.outbox if "helper@ghostcrm.test" in m.to), None), what="the invitation e-mail"
    )
    url = re.search(r"https?://\S+/accounts/invitations/\S+/", link.body)
    assert url, link.body

    invitee: Session = open_session()
    invitee.page.goto(url.group(0))
    invitee.shot("invitation-accept")
    invitee.page.get_by_label("Your e-mail address").fill("helper@ghostcrm.test")
    invitee.page.get_by_label("First name").fill("Hal")
    invitee.page.get_by_label("Last name").fill("Helper")
    invitee.page.get_by_label("Choose a password").fill("a long and unusual passphrase 42")
    invitee.page.get_by_label("Repeat the password").fill("a long and unusual passphrase 42")
    invitee.page.get_by_role("button", name=re.compile("Accept")).click()

    invitee.page.wait_for_url("**/accounts/mfa/enrol/**")
    totp = pyotp.TOTP(invitee.page.locator("code.secret").inner_text().replace(" ", ""))
    invitee.page.get_by_label(re.compile("Code")).fill(totp.now())
    invitee.page.get_by_role("button", name=re.compile("Confirm")).click()
    invitee.page.locator("ol.codes li").first.wait_for()
    invitee.page.get_by_role("link", name=re.compile("continue")).click()
    invitee.page.wait_for_url(re.compile(r"/admin/$"))
    invitee.shot("invitee-admin-index")

    admin_session.go("/admin/accounts/invitation/")
    assert "helper@ghostcrm.test" in page.content()
    invitation = Invitation.objects.get(email="helper@ghostcrm.test")
    assert invitation.state == Invitation.State.ACCEPTED
    assert invitation.accepted_user is not None
    assert invitation.accepted_user.role == "support"


def test_the_revenue_dashboard_shows_figures_from_real_data(admin_session: Session) -> None:
    make_plan("basic", 3000)
    make_plan("pro", 9000)
    for name, code in (("Alpha Revenue", "basic"), ("Bravo Revenue", "pro")):
        organization = make_organization(name=name)
        subscription = billing.subscription_create(organization_id=organization.pk, plan_code=code, actor=ACTOR)
        billing.invoice_mark_paid(invoice_id=Invoice.objects.get(subscription=subscription).pk, actor=ACTOR)

    admin_session.go("/admin/billing/revenuedashboard/?currency=EUR")
    mrr = admin_session.page.locator("#kpi-mrr").inner_text()
    assert mrr.startswith("120.00"), mrr
    assert admin_session.page.locator("svg.gc-chart").count() >= 1
    admin_session.shot("revenue-dashboard")


def test_the_admin_pages_of_a_signed_in_admin_load_cleanly(admin_session: Session) -> None:
    """Every admin list page linked from the index loads without console errors or failed requests."""
    admin_session.go("/admin/")
    links = sorted(
        {href for href in admin_session.page.locator("#content-main a").evaluate_all("els => els.map(e => e.href)")}
    )
    lists = [href for href in links if href.startswith(admin_session.base + "/admin/") and "/add/" not in href]
    assert len(lists) >= 8, links
    for href in lists:
        response = admin_session.page.goto(href)
        assert response is not None, href
        assert response.status == 200, href


def test_the_page_watch_reports_console_errors_exceptions_and_http_errors(admin_session: Session) -> None:
    """The checks every test relies on do catch problems (then this test clears them, having seen them)."""
    page = admin_session.page
    admin_session.go("/admin/no-such-page/")
    page.evaluate("console.error('deliberate console error')")
    with page.expect_event("pageerror"):
        page.evaluate("setTimeout(() => { throw new Error('deliberate exception') }, 0)")
    page.route("**/deliberately-unreachable.css", lambda route: route.abort())
    with page.expect_event("requestfailed"):
        page.evaluate(
            "document.head.appendChild(Object.assign(document.createElement('link'), "
            "{rel: 'stylesheet', href: '/deliberately-unreachable.css'}))"
        )
    seen = "\n".join(admin_session.watch.problems)
    assert "HTTP 404: GET" in seen
    assert "deliberate console error" in seen
    assert "deliberate exception" in seen
    assert "request failed: GET" in seen
    admin_session.watch.problems.clear()
