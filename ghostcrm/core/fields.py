"""Model fields encrypted at rest with Fernet (``cryptography``), keyed from ``FIELD_ENCRYPTION_KEYS``.

``FIELD_ENCRYPTION_KEYS`` lists Fernet keys newest first: values are written with the first key and read
with any of them (``MultiFernet``), so a new key goes in front, ``python manage.py rotate_encryption_keys``
re-encrypts every stored value with it, and only then may the old keys be removed.

In development with no keys configured, one key is derived from ``SECRET_KEY`` so a first run works
without set-up. That key is for development only: settings refuse to start staging or production
without ``FIELD_ENCRYPTION_KEYS``, and changing ``SECRET_KEY`` makes values written with it unreadable.

Values are stored as text (Fernet tokens are URL-safe base64), which every main-database engine holds.
Fields carry ``encrypted = True``: audit snapshots redact them and the rotation command finds them.
Encrypted columns cannot be searched: every lookup but ``isnull`` is refused.

Serialization (``dumpdata``, fixtures) never writes plaintext: a value is exported as ``fernet:<token>``
(``SERIALIZED_PREFIX``), encrypted with the newest key, and ``loaddata`` decrypts it with any configured key
and stores it again. A dump is therefore as secret as the keys, and loads only where one of them is
configured (anywhere else: a sentence naming the missing key). ``ghostcrm.core.serializers`` makes Django's
python/json/jsonl/yaml serializers ask the field for this form (they would pass a string through as is).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django import forms
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

from ghostcrm.core.errors import ApplicationError

# Marks a serialized (exported) value as a Fernet token; a colon never occurs in a token, nor in its base64.
SERIALIZED_PREFIX = "fernet:"
GENERATE_KEY_HINT = "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"


class EncryptionKeyError(ApplicationError, ImproperlyConfigured):
    """A stored value cannot be decrypted with any configured key, or a configured key is malformed.

    It is a configuration fault, not bad input: the fix is to restore the missing key.
    """

    code = "encryption_key"
    http_status = 500


def key_fingerprint(key: str | bytes) -> str:
    """A short, non-secret name for a key, for messages and audit events."""
    raw = key.encode() if isinstance(key, str) else key
    return hashlib.sha256(raw).hexdigest()[:8]


def development_key(secret_key: str) -> bytes:
    """The development-only Fernet key derived from ``SECRET_KEY`` (used when no keys are configured)."""
    digest = hashlib.sha256(b"ghostcrm-field-encryption:" + secret_key.encode()).digest()
    return base64.urlsafe_b64encode(digest)


def configured_keys() -> tuple[bytes, ...]:
    """The keys in use, newest first: ``FIELD_ENCRYPTION_KEYS``, else the development key."""
    keys = tuple(k.strip().encode() for k in getattr(settings, "FIELD_ENCRYPTION_KEYS", ()) if k.strip())
    if keys:
        return keys
    if settings.GHOSTCRM_ENV != "development":
        raise EncryptionKeyError(
            f"FIELD_ENCRYPTION_KEYS is empty with GHOSTCRM_ENV={settings.GHOSTCRM_ENV}; generate a key with "
            f"{GENERATE_KEY_HINT} and set it."
        )
    return (development_key(settings.SECRET_KEY),)


def describe_keys() -> str:
    """Which key set is in use, without revealing the keys."""
    keys = getattr(settings, "FIELD_ENCRYPTION_KEYS", ())
    if not [k for k in keys if k.strip()]:
        return "the development key derived from SECRET_KEY (FIELD_ENCRYPTION_KEYS is empty)"
    fingerprints = ", ".join(key_fingerprint(k) for k in configured_keys())
    return f"the {len(configured_keys())} key(s) in FIELD_ENCRYPTION_KEYS (fingerprints {fingerprints}, newest first)"


@functools.lru_cache(maxsize=8)
def _fernets(keys: tuple[bytes, ...]) -> tuple[MultiFernet, Fernet]:
    parsed = []
    for position, key in enumerate(keys, start=1):
        try:
            parsed.append(Fernet(key))
        except (ValueError, TypeError):
            raise EncryptionKeyError(
                f"FIELD_ENCRYPTION_KEYS entry #{position} (of {len(keys)}) is not a Fernet key (32 url-safe "
                f"base64-encoded bytes); generate one with {GENERATE_KEY_HINT}."
            ) from None
    return MultiFernet(parsed), parsed[0]


def multi_fernet() -> MultiFernet:
    """Encrypts with the newest key, decrypts with any configured key."""
    return _fernets(configured_keys())[0]


def newest_fernet() -> Fernet:
    return _fernets(configured_keys())[1]


def encrypt_text(plaintext: str) -> str:
    return multi_fernet().encrypt(plaintext.encode("utf-8")).decode("ascii")


def decrypt_text(token: str, *, label: str = "an encrypted value") -> str:
    try:
        return multi_fernet().decrypt(token.encode("ascii")).decode("utf-8")
    except (InvalidToken, UnicodeEncodeError):
        raise EncryptionKeyError(
            f"Cannot decrypt {label} with {describe_keys()}: it was encrypted with a key that is not configured. "
            "Put that key back in FIELD_ENCRYPTION_KEYS (after the newest key) and run "
            "`python manage.py rotate_encryption_keys`; remove an old key only after that command succeeds."
        ) from None


def is_current(token: str) -> bool:
    """Whether ``token`` is encrypted with the newest key (so rotation can skip it)."""
    try:
        newest_fernet().decrypt(token.encode("ascii"))
    except (InvalidToken, UnicodeEncodeError):
        return False
    return True


class EncryptedTextField(models.TextField):
    """Text encrypted at rest. ``None`` is stored as NULL; every string (even empty) is encrypted."""

    encrypted = True
    description = "Text encrypted at rest (Fernet)"

    @property
    def encrypted_label(self) -> str:
        model = getattr(self, "model", None)
        return f"{model._meta.label}.{self.name}" if model is not None else self.name

    def to_plaintext(self, value: Any) -> str:
        return str(value)

    def from_plaintext(self, text: str) -> Any:
        return text

    def from_serialized(self, value: Any) -> tuple[bool, Any]:
        """``(True, plaintext value)`` for an exported ``fernet:<token>``, else ``(False, value)``."""
        if not (isinstance(value, str) and value.startswith(SERIALIZED_PREFIX)):
            return False, value
        try:
            text = decrypt_text(value[len(SERIALIZED_PREFIX) :], label=f"the exported {self.encrypted_label}")
        except EncryptionKeyError as exc:
            # loaddata reports it with the fixture's name; a form shows it as a field error.
            raise DjangoValidationError(exc.message, code="encryption_key") from None
        return True, self.from_plaintext(text)

    def to_python(self, value: Any) -> Any:
        serialized, value = self.from_serialized(value)
        return value if serialized else super().to_python(value)

    def value_to_string(self, obj: models.Model) -> Any:
        """The exported form: never the plaintext (see the module's docstring)."""
        value = self.value_from_object(obj)
        return None if value is None else SERIALIZED_PREFIX + encrypt_text(self.to_plaintext(value))

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> Any:
        if value is None:
            return None
        return self.from_plaintext(decrypt_text(value, label=self.encrypted_label))

    def get_prep_value(self, value: Any) -> str | None:
        if value is None:
            return None
        return encrypt_text(self.to_plaintext(value))

    def get_lookup(self, lookup_name: str) -> Any:
        # An equality lookup would compare against a freshly encrypted (random) token and silently match nothing.
        return super().get_lookup(lookup_name) if lookup_name == "isnull" else None

    def get_transform(self, lookup_name: str) -> Any:
        return None


class EncryptedJSONField(EncryptedTextField):
    """A JSON document (dict, list, scalar) encrypted at rest as one text value."""

    description = "JSON encrypted at rest (Fernet)"

    def to_plaintext(self, value: Any) -> str:
        return json.dumps(value, cls=DjangoJSONEncoder, sort_keys=True, separators=(",", ":"))

    def from_plaintext(self, text: str) -> Any:
        return json.loads(text)

    def to_python(self, value: Any) -> Any:
        return self.from_serialized(value)[1]

    def formfield(self, form_class: Any = None, choices_form_class: Any = None, **kwargs: Any) -> Any:
        return models.Field.formfield(self, form_class=form_class or forms.JSONField, **kwargs)
