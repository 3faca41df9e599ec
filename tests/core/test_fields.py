"""Encrypted fields: values are Fernet tokens at rest, read back with any configured key, and a missing key
is a clear sentence."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.checks import run_checks
from django.core.exceptions import FieldError, ValidationError
from django.db import connection
from django.test import override_settings

from ghostcrm.core.fields import (
    SERIALIZED_PREFIX,
    EncryptedJSONField,
    EncryptedTextField,
    EncryptionKeyError,
    development_key,
    key_fingerprint,
)
from ghostcrm.integrations.models import IntegrationPreference
from ghostcrm.organizations.models import Organization
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


@pytest.mark.django_db
@pytest.mark.parametrize("fmt", ["json", "jsonl", "yaml", "xml", "python"])
def test_serialization_exports_ciphertext_and_loads_it_back(organization: Organization, fmt: str) -> None:
    from django.core import serializers

    preference = IntegrationPreference.objects.create(
        organization=organization, provider="slack", settings=SLACK_SETTINGS, secrets=SLACK_SECRETS
    )
    Organization.objects.filter(pk=organization.pk).update(app_role_password="hunter2-role-password")
    objects = [Organization.objects.get(pk=organization.pk), preference]
    dumped = serializers.serialize(fmt, objects)
    text = repr(dumped)  # the python format is a list of dicts
    for plaintext in (*SLACK_SECRETS.values(), "bot_token", "hunter2-role-password"):
        assert plaintext not in text
    assert text.count(SERIALIZED_PREFIX) == 2

    IntegrationPreference.objects.all().delete()
    Organization.objects.all().delete()
    for restored in serializers.deserialize(fmt, dumped):
        restored.save()
    assert IntegrationPreference.objects.get(pk=preference.pk).secrets == SLACK_SECRETS
    assert Organization.objects.get(pk=organization.pk).app_role_password == "hunter2-role-password"
    assert SLACK_SECRETS["bot_token"] not in stored_token(preference)


@pytest.mark.django_db
def test_dumpdata_writes_no_secret_and_loaddata_needs_a_configured_key(
    organization: Organization, tmp_path: Path
) -> None:
    from django.core.management import call_command
    from django.core.serializers.base import DeserializationError

    key, other = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    with override_settings(FIELD_ENCRYPTION_KEYS=[key]):
        preference = IntegrationPreference.objects.create(
            organization=organization, provider="slack", settings=SLACK_SETTINGS, secrets=SLACK_SECRETS
        )
        dump = tmp_path / "integrations.json"
        call_command("dumpdata", "integrations", output=str(dump), verbosity=0)
        IntegrationPreference.objects.all().delete()
    content = dump.read_text()
    assert SLACK_SECRETS["bot_token"] not in content and SERIALIZED_PREFIX in content

    # Elsewhere, without the key the dump was written with: one sentence naming the field and the fix.
    with override_settings(FIELD_ENCRYPTION_KEYS=[other]), pytest.raises(DeserializationError) as caught:
        call_command("loaddata", str(dump), verbosity=0)
    error = str(caught.value)
    assert error.startswith("Problem installing fixture")
    assert "Cannot decrypt the exported integrations.IntegrationPreference.secrets" in error
    assert key_fingerprint(other) in error
    assert not IntegrationPreference.objects.exists()

    # With that key among the configured ones (rotation under way), it loads and is stored under the newest.
    with override_settings(FIELD_ENCRYPTION_KEYS=[other, key]):
        call_command("loaddata", str(dump), verbosity=0)
        assert IntegrationPreference.objects.get(pk=preference.pk).secrets == SLACK_SECRETS
        assert Fernet(other.encode()).decrypt(stored_token(preference).encode())


def test_a_form_value_that_looks_exported_but_does_not_decrypt_is_a_field_error() -> None:
    with pytest.raises(ValidationError, match="Cannot decrypt"):
        EncryptedTextField().clean(SERIALIZED_PREFIX + "not-a-token", None)
    assert EncryptedTextField().clean("plain text", None) == "plain text"


def test_a_fixture_that_cannot_load_is_one_sentence_on_the_command_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from django.core import management
    from django.core.serializers.base import DeserializationError

    from ghostcrm.core.startup import run_command_line

    def loaddata(argv: list[str]) -> None:
        raise DeserializationError("Problem installing fixture 'dump.json': Cannot decrypt the exported x.")

    monkeypatch.setattr(management, "execute_from_command_line", loaddata)
    with pytest.raises(SystemExit) as caught:
        run_command_line(["manage.py", "loaddata", "dump.json"])
    assert caught.value.code == 1
    assert (
        capsys.readouterr().err == "ghostcrm: Problem installing fixture 'dump.json': Cannot decrypt the exported x.\n"
    )
