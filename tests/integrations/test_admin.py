"""The integration preference admin: secrets are write-only, bad input is a form error, changes are audited."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from ghostcrm.accounts.models import Role, User
from ghostcrm.audit.models import AuditEvent
from ghostcrm.audit.services import Actor
from ghostcrm.integrations.models import IntegrationPreference
from ghostcrm.integrations.services import integration_preference_set
from ghostcrm.organizations.models import Organization
from tests.conftest import login_with_verified_otp
from tests.integrations.conftest import SLACK_SECRETS, SLACK_SETTINGS, make_organization

pytestmark = pytest.mark.django_db
ADD_URL = reverse("admin:integrations_integrationpreference_add")


def change_url(preference: IntegrationPreference) -> str:
    return reverse("admin:integrations_integrationpreference_change", args=[preference.pk])


def form_data(organization: Organization, **overrides: Any) -> dict[str, Any]:
    data = {
        "organization": str(organization.pk),
        "provider": "slack",
        "enabled": "on",
        "settings": json.dumps(SLACK_SETTINGS),
        "secrets": json.dumps(SLACK_SECRETS),
        "_save": "Save",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


@pytest.fixture
def slack(organization: Organization) -> IntegrationPreference:
    return integration_preference_set(
        organization_id=organization.pk,
        provider="slack",
        enabled=True,
        settings=SLACK_SETTINGS,
        secrets=SLACK_SECRETS,
        actor=Actor.system("tests"),
    )


def test_add_stores_encrypted_secrets_and_audits(admin_session: Client, organization: Organization) -> None:
    response = admin_session.post(ADD_URL, form_data(organization))
    assert response.status_code == 302, response.content.decode()[:2000]
    preference = IntegrationPreference.objects.get()
    assert preference.enabled and preference.secrets == SLACK_SECRETS and preference.settings == SLACK_SETTINGS
    event = AuditEvent.objects.get()  # one event per admin add: the service's
    assert event.action == "integration.preference_set" and event.actor_label == "root@ghostcrm.test"
    assert event.target_id == str(preference.pk) and event.organization_id == organization.pk
    assert event.after["secrets"] == "[redacted]" and event.after["secret_names"] == ["bot_token", "signing_secret"]
    assert SLACK_SECRETS["bot_token"] not in json.dumps(event.after)


def test_change_page_shows_secret_names_never_values(admin_session: Client, slack: IntegrationPreference) -> None:
    page = admin_session.get(change_url(slack)).content.decode()
    assert "bot_token, signing_secret" in page
    for value in SLACK_SECRETS.values():
        assert value not in page
    listing = admin_session.get(reverse("admin:integrations_integrationpreference_changelist")).content.decode()
    assert "bot_token, signing_secret" in listing and SLACK_SECRETS["bot_token"] not in listing


def test_change_with_empty_secrets_keeps_them_and_a_partial_update_merges(
    admin_session: Client, slack: IntegrationPreference, organization: Organization
) -> None:
    response = admin_session.post(change_url(slack), form_data(organization, secrets="", enabled=None))
    assert response.status_code == 302
    slack.refresh_from_db()
    assert slack.secrets == SLACK_SECRETS and not slack.enabled
    event = AuditEvent.objects.filter(action="integration.preference_set").latest("id")
    assert not AuditEvent.objects.filter(action__startswith="admin.").exists()
    assert event.before["enabled"] is True and event.after["enabled"] is False

    new_token = "xoxb-7777777777-rotatedxxx"
    admin_session.post(change_url(slack), form_data(organization, secrets=json.dumps({"bot_token": new_token})))
    slack.refresh_from_db()
    assert slack.secrets == {**SLACK_SECRETS, "bot_token": new_token}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"secrets": "{not json"}, "Enter a valid JSON."),
        ({"secrets": '["a"]'}, "Enter a JSON object of secret names"),
        ({"secrets": json.dumps({"signing_secret": "z" * 20})}, "bot_token is required to enable this integration."),
        ({"settings": json.dumps({"default_channel": "#sales", "x": 1})}, "Unknown settings x"),
        ({"settings": "[]"}, "Settings must be a JSON object"),
        ({"provider": "fax"}, "Select a valid choice."),
    ],
)
def test_bad_input_is_a_form_error_and_nothing_is_written(
    admin_session: Client, organization: Organization, overrides: dict[str, str], message: str
) -> None:
    response = admin_session.post(ADD_URL, form_data(organization, **overrides))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not IntegrationPreference.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="admin.").exists()


def test_a_rejected_form_does_not_echo_submitted_secrets(admin_session: Client, organization: Organization) -> None:
    response = admin_session.post(ADD_URL, form_data(organization, settings="{}"))
    assert response.status_code == 200
    assert SLACK_SECRETS["bot_token"] not in response.content.decode()


def test_duplicate_provider_for_an_organisation_is_a_form_error(
    admin_session: Client, slack: IntegrationPreference, organization: Organization
) -> None:
    response = admin_session.post(ADD_URL, form_data(organization))
    assert response.status_code == 200
    assert "already exists" in response.content.decode()
    assert IntegrationPreference.objects.count() == 1


def test_support_staff_see_no_secrets_and_cannot_change(
    client: Client, slack: IntegrationPreference, organization: Organization
) -> None:
    support = User.objects.create_user(email="help@ghostcrm.test", password="x" * 16, role=Role.SUPPORT)
    login_with_verified_otp(client, support)
    page = client.get(change_url(slack))
    assert page.status_code == 200
    body = page.content.decode()
    assert "bot_token, signing_secret" in body
    for value in SLACK_SECRETS.values():
        assert value not in body
    assert client.post(change_url(slack), form_data(organization, enabled=None)).status_code == 403
    assert client.get(ADD_URL).status_code == 403
    slack.refresh_from_db()
    assert slack.enabled


def test_search_and_filters(admin_session: Client, slack: IntegrationPreference) -> None:
    other = make_organization("Zeta Corp")
    integration_preference_set(organization_id=other.pk, provider="zapier", actor=Actor.system("tests"))
    url = reverse("admin:integrations_integrationpreference_changelist")
    assert "Zeta Corp" in admin_session.get(url, {"q": "zeta"}).content.decode()
    assert "Zeta Corp" not in admin_session.get(url, {"q": "acme"}).content.decode()
    filtered = admin_session.get(url, {"provider__exact": "slack", "enabled__exact": "1"}).content.decode()
    assert "Zeta Corp" not in filtered and "Acme Ltd" in filtered
