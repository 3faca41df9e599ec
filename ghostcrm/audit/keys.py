"""The audit chain's HMAC keys: from the environment (``AUDIT_HMAC_KEYS``), never from the database.

``AUDIT_HMAC_KEYS`` lists ``id:secret`` pairs, comma-separated, newest first. New links and checkpoints are
signed with the first; every listed key verifies the links it signed (each row records its key id), so a
key rotates by putting a new one first and keeping the old one listed for as long as rows signed with it
remain in the log or its archives. Whoever can recompute a link needs the key: write access to the
database alone is not enough (docs/audit.md).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.serializers.json import DjangoJSONEncoder

KEY_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,32}$")
MIN_SECRET_LENGTH = 32  # outside development; 32 characters of token_urlsafe carry ~190 bits
GENERATE_HINT = "python -c 'import secrets; print(\"k1:\" + secrets.token_urlsafe(48))'"


@dataclass(frozen=True)
class AuditKey:
    id: str
    secret: bytes = b""

    def __repr__(self) -> str:  # never print the secret
        return f"AuditKey({self.id!r})"


def _parse(entry: str, position: int) -> AuditKey:
    key_id, sep, secret = entry.strip().partition(":")
    if not sep or not KEY_ID_RE.match(key_id) or not secret:
        raise ImproperlyConfigured(
            f"AUDIT_HMAC_KEYS entry #{position} is not 'id:secret' (id of letters, digits, '.', '_' or '-', up to "
            f"32 characters); generate one with {GENERATE_HINT}."
        )
    if len(secret) < MIN_SECRET_LENGTH and settings.GHOSTCRM_ENV != "development":
        raise ImproperlyConfigured(
            f"AUDIT_HMAC_KEYS key {key_id!r} is shorter than {MIN_SECRET_LENGTH} characters; generate one with "
            f"{GENERATE_HINT}."
        )
    return AuditKey(key_id, secret.encode("utf-8"))


def configured_keys() -> tuple[AuditKey, ...]:
    """The keys, newest first; at least one (settings refuses to start without one outside development)."""
    entries = [entry for entry in getattr(settings, "AUDIT_HMAC_KEYS", ()) if entry.strip()]
    if not entries:
        raise ImproperlyConfigured(f"AUDIT_HMAC_KEYS is empty; generate a key with {GENERATE_HINT} and set it.")
    keys = tuple(_parse(entry, position) for position, entry in enumerate(entries, start=1))
    if len({key.id for key in keys}) != len(keys):
        raise ImproperlyConfigured("AUDIT_HMAC_KEYS names one key id twice; give each key its own id.")
    return keys


def signing_key() -> AuditKey:
    return configured_keys()[0]


def key_by_id(key_id: str) -> AuditKey | None:
    return next((key for key in configured_keys() if key.id == key_id), None)


def canonical(fields: dict[str, Any]) -> bytes:
    return json.dumps(fields, cls=DjangoJSONEncoder, sort_keys=True, separators=(",", ":")).encode("utf-8")


def sign(key: AuditKey, fields: dict[str, Any]) -> str:
    """HMAC-SHA256 of the canonical JSON of ``fields``, hex."""
    return hmac.new(key.secret, canonical(fields), hashlib.sha256).hexdigest()


def signature_valid(key_id: str, fields: dict[str, Any], signature: str) -> bool:
    key = key_by_id(key_id)
    return key is not None and hmac.compare_digest(sign(key, fields), signature)
