"""Integration preferences: per-provider validation, secrets merged or rotated, every change audited."""

from __future__ import annotations

import uuid

import pytest

from ghostcrm.audit.models import AuditEvent
from ghostcrm.audit.services import Actor
from ghostcrm.core.errors import NotFound, ValidationError
from ghostcrm.core.services import system_setting_set
from ghostcrm.integrations.models import IntegrationPreference
from ghostcrm.integrations.providers import PROVIDERS, validate_preference
from ghostcrm.integrations.services import integration_preference_set
from ghostcrm.organizations.models import Organization
from tests.integrations.conftest import SLACK_SECRETS, SLACK_SETTINGS

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("tests")

VALID = {
    "slack": (SLACK_SETTINGS, SLACK_SECRETS),
    "google_workspace": (
        {"domain": "example.com", "admin_email": "it@example.com"},
        {"service_account_json": '{"client_email": "svc@example.iam", "private_key": "-----BEGIN"}'},
    ),
    "microsoft_365": (
        {"tenant_id": str(uuid.uuid4()), "client_id": str(uuid.uuid4())},
        {"client_secret": "s3cret-value"},
    ),
    "hubspot": ({"portal_id": "123456"}, {"private_app_token": "pat-eu1-0123abcd-4567"}),
    "salesforce": (
        {"instance_url": "https://acme.my.salesforce.com", "client_id": "3MVG9abcdef"},
        {"client_secret": "abcdef123456", "refresh_token": "5Aep861abcdef"},
    ),
    "mailchimp": ({"server_prefix": "us21"}, {"api_key": "0123456789abcdef0123456789abcdef-us21"}),
    "twilio": (
        {"account_sid": "AC" + "0" * 32, "from_number": "+447700900123"},
        {"auth_token": "f" * 32},
    ),
    "zapier": ({"hook_url": "https://hooks.zapier.com/hooks/catch/1/abc/"}, {}),
    "webhook": ({"url": "https://crm.example.com/hook", "events": ["deal.won"]}, {"signing_secret": "x" * 20}),
    "stripe": ({}, {"secret_key": "sk_test_" + "a" * 24}),
}


def test_every_provider_is_declared_and_has_a_valid_example() -> None:
    assert set(VALID) == set(PROVIDERS)
    for provider, (settings, secrets) in VALID.items():
        assert validate_preference(provider=provider, settings=settings, secrets=secrets, enabled=True) == {}


@pytest.mark.parametrize("provider", sorted(VALID))
def test_each_provider_enables_with_its_required_keys(organization: Organization, provider: str) -> None:
    settings, secrets = VALID[provider]
    preference = integration_preference_set(
        organization_id=organization.pk,
        provider=provider,
        enabled=True,
        settings=settings,
        secrets=secrets,
        actor=ACTOR,
    )
    stored = IntegrationPreference.objects.get(pk=preference.pk)
    assert stored.enabled and stored.settings == settings and stored.secrets == secrets


@pytest.mark.parametrize(
    ("provider", "settings", "secrets", "field", "fragment"),
    [
        ("slack", {}, SLACK_SECRETS, "settings", "default_channel is required"),
        ("slack", SLACK_SETTINGS, {}, "secrets", "bot_token is required"),
        ("slack", {"default_channel": "sales"}, SLACK_SECRETS, "settings", "a channel name like #sales"),
        ("slack", {**SLACK_SETTINGS, "colour": "red"}, SLACK_SECRETS, "settings", "Unknown settings colour"),
        ("slack", SLACK_SETTINGS, {"bot_token": "nope"}, "secrets", "a bot token starting xoxb-"),
        ("webhook", {"url": "http://plain.example.com"}, {"signing_secret": "x" * 20}, "settings", "https:// URL"),
        ("twilio", {"account_sid": "AC1", "from_number": "+447700900123"}, {"auth_token": "f" * 32}, "settings", "SID"),
        ("stripe", {}, {"secret_key": "pk_test_" + "a" * 24}, "secrets", "sk_"),
        ("google_workspace", VALID["google_workspace"][0], {"service_account_json": "{}"}, "secrets", "lacks"),
    ],
)
def test_bad_settings_or_secrets_are_refused_and_nothing_is_written(
    organization: Organization, provider: str, settings: dict, secrets: dict, field: str, fragment: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        integration_preference_set(
            organization_id=organization.pk,
            provider=provider,
            enabled=True,
            settings=settings,
            secrets=secrets,
            actor=ACTOR,
        )
    assert caught.value.code == "invalid"
    assert any(fragment in message for message in caught.value.extra["fields"][field])
    assert fragment in caught.value.message
    assert not IntegrationPreference.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="integration.").exists()


def test_a_disabled_preference_may_be_incomplete_but_not_enabled(organization: Organization) -> None:
    preference = integration_preference_set(
        organization_id=organization.pk, provider="slack", settings=SLACK_SETTINGS, actor=ACTOR
    )
    assert not preference.enabled
    with pytest.raises(ValidationError, match="bot_token is required"):
        integration_preference_set(organization_id=organization.pk, provider="slack", enabled=True, actor=ACTOR)
    assert not IntegrationPreference.objects.get(pk=preference.pk).enabled


def test_secrets_merge_keeps_unnamed_ones_and_null_removes(organization: Organization) -> None:
    integration_preference_set(
        organization_id=organization.pk, provider="slack", settings=SLACK_SETTINGS, secrets=SLACK_SECRETS, actor=ACTOR
    )
    integration_preference_set(
        organization_id=organization.pk,
        provider="slack",
        secrets={"bot_token": "xoxb-9999999999-zzzzzzzzzz", "signing_secret": None},
        actor=ACTOR,
    )
    stored = IntegrationPreference.objects.get(organization=organization, provider="slack")
    assert stored.secrets == {"bot_token": "xoxb-9999999999-zzzzzzzzzz"}
    assert stored.settings == SLACK_SETTINGS  # untouched when not given


def test_changes_are_audited_with_secret_names_but_never_values(organization: Organization) -> None:
    preference = integration_preference_set(
        organization_id=organization.pk,
        provider="slack",
        enabled=True,
        settings=SLACK_SETTINGS,
        secrets=SLACK_SECRETS,
        actor=ACTOR,
    )
    integration_preference_set(organization_id=organization.pk, provider="slack", enabled=False, actor=ACTOR)
    first, second = AuditEvent.objects.filter(action="integration.preference_set").order_by("id")
    assert first.before is None and first.after["enabled"] is True
    assert first.after["secrets"] == "[redacted]"
    assert first.after["secret_names"] == ["bot_token", "signing_secret"]
    assert first.organization_id == organization.pk and first.target_id == str(preference.pk)
    assert second.before["enabled"] is True and second.after["enabled"] is False
    for event in (first, second):
        for value in SLACK_SECRETS.values():
            assert value not in str(event.before) + str(event.after) + event.message


def test_one_preference_per_organisation_and_provider(organization: Organization) -> None:
    for _ in range(2):
        integration_preference_set(organization_id=organization.pk, provider="zapier", actor=ACTOR)
    assert IntegrationPreference.objects.filter(organization=organization, provider="zapier").count() == 1


def test_unknown_provider_and_organisation(organization: Organization) -> None:
    with pytest.raises(ValidationError, match="Unknown provider 'fax'"):
        integration_preference_set(organization_id=organization.pk, provider="fax", actor=ACTOR)
    with pytest.raises(NotFound, match="does not exist"):
        integration_preference_set(organization_id=uuid.uuid4(), provider="slack", actor=ACTOR)


def test_enabling_respects_the_enabled_providers_system_setting(organization: Organization) -> None:
    system_setting_set(key="integrations.enabled_providers", value=["webhook"], actor=ACTOR)
    settings, secrets = VALID["slack"]
    with pytest.raises(ValidationError, match=r"integrations\.enabled_providers allows only webhook"):
        integration_preference_set(
            organization_id=organization.pk,
            provider="slack",
            enabled=True,
            settings=settings,
            secrets=secrets,
            actor=ACTOR,
        )
    settings, secrets = VALID["webhook"]
    integration_preference_set(
        organization_id=organization.pk,
        provider="webhook",
        enabled=True,
        settings=settings,
        secrets=secrets,
        actor=ACTOR,
    )
    enabled = IntegrationPreference.objects.filter(organization=organization, enabled=True)
    assert [p.provider for p in enabled] == ["webhook"]
