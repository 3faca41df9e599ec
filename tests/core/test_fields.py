"""Encrypted fields: values are Fernet tokens at rest, read back with any configured key, and a missing key
is a clear sentence."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.core.checks import run_checks
from django.core.exceptions import FieldError
from django.db import connection
from django.test import override_settings

from ghostcrm.core.fields import (
    EncryptedJSONField,
    EncryptedTextField,
    EncryptionKeyError,
    development_key,
    key_fingerprint,
)
from ghostcrm.integrations.models import IntegrationPreference
from tenants.models import Organization
from tests.integrations.conftest import SLACK_SECRETS, SLACK_SETTINGS


def stored_token(preference: IntegrationPreference) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT secrets FROM {connection.ops.quote_name(IntegrationPreference._meta.db_table)} WHERE id = %s",
            [preference.pk.hex if connection.vendor == "sqlite" else preference.pk],
        )
        return cursor.fetchone()[0]


def test_text_round_trips_through_a_fernet_token() -> None:
    key = Fernet.generate_key().decode()
    field = EncryptedTextField()
    with override_settings(FIELD_ENCRYPTION_KEYS=[key]):
        token = field.get_prep_value("hunter2-secret")
        assert token is not None and "hunter2" not in token
        assert Fernet(key.encode()).decrypt(token.encode()) == b"hunter2-secret"
        assert field.from_db_value(token, None, connection) == "hunter2-secret"
        assert field.get_prep_value("") != ""  # even empty text is encrypted
        assert field.from_db_value(field.get_prep_value(""), None, connection) == ""
    assert field.get_prep_value(None) is None
    assert field.from_db_value(None, None, connection) is None
    assert field.encrypted is True


def test_json_round_trips() -> None:
    field = EncryptedJSONField()
    value = {"b": [1, 2], "a": "é"}
    with override_settings(FIELD_ENCRYPTION_KEYS=[Fernet.generate_key().decode()]):
        assert field.from_db_value(field.get_prep_value(value), None, connection) == value


def test_development_without_keys_uses_a_key_derived_from_the_secret_key() -> None:
    with override_settings(FIELD_ENCRYPTION_KEYS=[], GHOSTCRM_ENV="development", SECRET_KEY="s" * 50):
        token = EncryptedTextField().get_prep_value("dev value")
    assert Fernet(development_key("s" * 50)).decrypt(token.encode()) == b"dev value"


def test_outside_development_keys_are_required() -> None:
    with (
        override_settings(FIELD_ENCRYPTION_KEYS=[], GHOSTCRM_ENV="staging"),
        pytest.raises(EncryptionKeyError, match="FIELD_ENCRYPTION_KEYS is empty with GHOSTCRM_ENV=staging"),
    ):
        EncryptedTextField().get_prep_value("x")


def test_a_malformed_key_is_named_by_position_and_fails_the_system_check() -> None:
    with override_settings(FIELD_ENCRYPTION_KEYS=[Fernet.generate_key().decode(), "not-a-key"]):
        with pytest.raises(EncryptionKeyError, match=r"entry #2 \(of 2\) is not a Fernet key"):
            EncryptedTextField().get_prep_value("x")
        errors = [e for e in run_checks() if e.id == "core.E001"]
    assert len(errors) == 1 and "entry #2" in errors[0].msg


@pytest.mark.django_db
def test_secrets_are_stored_encrypted_and_read_back(organization: Organization) -> None:
    preference = IntegrationPreference.objects.create(
        organization=organization, provider="slack", settings=SLACK_SETTINGS, secrets=SLACK_SECRETS
    )
    token = stored_token(preference)
    assert SLACK_SECRETS["bot_token"] not in token and "bot_token" not in token
    assert IntegrationPreference.objects.get(pk=preference.pk).secrets == SLACK_SECRETS


@pytest.mark.django_db
def test_a_value_encrypted_with_an_unconfigured_key_is_a_clear_error(organization: Organization) -> None:
    old, other = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    with override_settings(FIELD_ENCRYPTION_KEYS=[old]):
        preference = IntegrationPreference.objects.create(organization=organization, provider="slack", secrets={})
    with override_settings(FIELD_ENCRYPTION_KEYS=[other]), pytest.raises(EncryptionKeyError) as caught:
        IntegrationPreference.objects.get(pk=preference.pk)
    message = caught.value.message
    assert "integrations.IntegrationPreference.secrets" in message
    assert key_fingerprint(other) in message and key_fingerprint(old) not in message
    assert "rotate_encryption_keys" in message and "FIELD_ENCRYPTION_KEYS" in message


@pytest.mark.django_db
def test_lookups_on_encrypted_columns_are_refused() -> None:
    with pytest.raises(FieldError, match="Unsupported lookup"):
        list(IntegrationPreference.objects.filter(secrets={"a": "b"}))
    assert list(IntegrationPreference.objects.filter(secrets__isnull=True)) == []
