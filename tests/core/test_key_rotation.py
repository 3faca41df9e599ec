"""`manage.py rotate_encryption_keys`: old keys still decrypt before rotation; afterwards only the newest is needed."""

from __future__ import annotations

from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.test import override_settings

from ghostcrm.audit.models import AuditEvent
from ghostcrm.core.fields import EncryptionKeyError, key_fingerprint
from ghostcrm.integrations.models import IntegrationPreference
from ghostcrm.organizations.models import Organization
from tests.core.test_fields import stored_token
from tests.integrations.conftest import SLACK_SECRETS, make_organization

pytestmark = pytest.mark.django_db


def new_key() -> str:
    return Fernet.generate_key().decode()


def rotate(*keys: str) -> str:
    out = StringIO()
    with override_settings(FIELD_ENCRYPTION_KEYS=list(keys)):
        call_command("rotate_encryption_keys", "--batch-size", "2", stdout=out)
    return out.getvalue()


def test_rotation_re_encrypts_every_value_with_the_newest_key(organization: Organization) -> None:
    old, new = new_key(), new_key()
    with override_settings(FIELD_ENCRYPTION_KEYS=[old]):
        preferences = [
            IntegrationPreference.objects.create(
                organization=make_organization(f"Org {i}"), provider="slack", secrets={**SLACK_SECRETS, "n": str(i)}
            )
            for i in range(5)
        ]
    before = {p.pk: stored_token(p) for p in preferences}

    # A new key in front: values written with the old key still read.
    with override_settings(FIELD_ENCRYPTION_KEYS=[new, old]):
        assert IntegrationPreference.objects.get(pk=preferences[0].pk).secrets["n"] == "0"
    # Without the old key they do not, until rotated.
    with override_settings(FIELD_ENCRYPTION_KEYS=[new]), pytest.raises(EncryptionKeyError):
        IntegrationPreference.objects.get(pk=preferences[0].pk)

    output = rotate(new, old)
    assert "5 re-encrypted, 0 already current" in output
    assert "integrations.IntegrationPreference.secrets: 5 re-encrypted" in output
    for preference in preferences:
        assert stored_token(preference) != before[preference.pk]
        assert Fernet(new.encode()).decrypt(stored_token(preference).encode())

    with override_settings(FIELD_ENCRYPTION_KEYS=[new]):
        assert sorted(int(p.secrets["n"]) for p in IntegrationPreference.objects.all()) == [0, 1, 2, 3, 4]

    event = AuditEvent.objects.filter(action="encryption.keys_rotate").get()
    assert event.outcome == "success"
    assert event.after["key_fingerprint"] == key_fingerprint(new)
    assert event.after["fields"]["integrations.IntegrationPreference.secrets"] == {
        "rotated": 5,
        "current": 0,
        "failed": 0,
    }
    assert old not in str(event.after) and new not in str(event.after)

    # A second run finds nothing to do and changes nothing.
    tokens = {p.pk: stored_token(p) for p in preferences}
    assert "0 re-encrypted, 5 already current" in rotate(new, old)
    assert tokens == {p.pk: stored_token(p) for p in preferences}


def test_rotation_names_values_no_key_can_decrypt_and_finishes_the_others(organization: Organization) -> None:
    lost, old, new = new_key(), new_key(), new_key()
    with override_settings(FIELD_ENCRYPTION_KEYS=[lost]):
        orphan = IntegrationPreference.objects.create(organization=organization, provider="slack", secrets={})
    with override_settings(FIELD_ENCRYPTION_KEYS=[old]):
        good = IntegrationPreference.objects.create(
            organization=make_organization("Other"), provider="slack", secrets=SLACK_SECRETS
        )
    orphan_token = stored_token(orphan)

    with pytest.raises(CommandError) as caught:
        rotate(new, old)
    message = str(caught.value)
    assert "1 value(s) could not be decrypted" in message
    assert str(orphan.pk) in message and "FIELD_ENCRYPTION_KEYS" in message
    assert stored_token(orphan) == orphan_token
    with override_settings(FIELD_ENCRYPTION_KEYS=[new]):
        assert IntegrationPreference.objects.get(pk=good.pk).secrets == SLACK_SECRETS
    event = AuditEvent.objects.filter(action="encryption.keys_rotate").get()
    assert event.outcome == "failure"
    assert "1 undecryptable" in event.message


def test_a_malformed_key_stops_before_any_write(organization: Organization) -> None:
    key = new_key()
    with override_settings(FIELD_ENCRYPTION_KEYS=[key]):
        preference = IntegrationPreference.objects.create(organization=organization, provider="slack", secrets={})
    token = stored_token(preference)
    with pytest.raises(CommandError, match="is not a Fernet key"):
        rotate("garbage", key)
    assert stored_token(preference) == token
    assert not AuditEvent.objects.filter(action="encryption.keys_rotate").exists()
