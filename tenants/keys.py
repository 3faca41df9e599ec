"""Service-role API keys: create (shown once), authenticate, revoke.

A key reads ``gcrm_<prefix>_<secret>``. The prefix (8 hex characters, not secret) finds the row; the secret
(32 random bytes, URL-safe base64) is stored only as its SHA-256. SHA-256 without a salt or stretching is
enough here because the secret is high-entropy random, not a password a person chose.

They live in ``tenants`` because the only API they open is the provisioning API.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone

from ghostcrm.audit.models import AuditEvent
from ghostcrm.audit.services import Actor, audit_record, model_snapshot
from ghostcrm.core.errors import ApplicationError, NotFound, ValidationError
from tenants.models import ServiceKey

KEY_TYPE = "gcrm"
KEY_RE = re.compile(r"^gcrm_(?P<prefix>[0-9a-f]{8})_(?P<secret>[A-Za-z0-9_-]{43})$")
SCOPES = tuple(ServiceKey.Scope.values)


class Unauthenticated(ApplicationError):
    code = "unauthenticated"
    http_status = 401


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def service_key_create(
    *,
    name: str,
    scopes: list[str],
    actor: Actor,
    expires_at: dt.datetime | None = None,
    created_by: object | None = None,
    request: HttpRequest | None = None,
) -> tuple[ServiceKey, str]:
    """Create a key; returns the row and the full key, which is never shown or stored again."""
    name = (name or "").strip()
    scopes = sorted({s.strip() for s in scopes if s and s.strip()})
    errors: dict[str, list[str]] = {}
    if not name:
        errors["name"] = ["Give the key a name (who or what uses it)."]
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        errors["scopes"] = [f"Unknown scope(s): {', '.join(unknown)}; choose from {', '.join(SCOPES)}."]
    elif not scopes:
        errors["scopes"] = [f"Give at least one scope: {', '.join(SCOPES)}."]
    if expires_at is not None and expires_at <= timezone.now():
        errors["expires_at"] = ["The expiry must be in the future."]
    if errors:
        raise ValidationError(next(iter(errors.values()))[0], extra={"fields": errors})
    for _ in range(5):  # prefixes are random; a collision is vanishingly rare but cheap to handle
        prefix = secrets.token_hex(4)
        secret = secrets.token_urlsafe(32)
        key = ServiceKey(
            name=name,
            prefix=prefix,
            key_hash=_hash(secret),
            scopes=" ".join(scopes),
            expires_at=expires_at,
            created_by=created_by,  # type: ignore[misc]
        )
        try:
            key.full_clean(exclude=["created_by"])
            with transaction.atomic(using="default"):
                key.save()
                audit_record(
                    action="service_key.create", actor=actor, target=key, after=model_snapshot(key), request=request
                )
        except IntegrityError:
            continue
        except DjangoValidationError as exc:
            raise ValidationError(" ".join(exc.messages), extra={"fields": exc.message_dict}) from None
        return key, f"{KEY_TYPE}_{prefix}_{secret}"
    raise ApplicationError("Could not allocate a unique key prefix; try again.")


def service_key_revoke(*, key_id: int, actor: Actor, request: HttpRequest | None = None) -> ServiceKey:
    with transaction.atomic(using="default"):
        key = ServiceKey.objects.select_for_update().filter(pk=key_id).first()
        if key is None:
            raise NotFound(f"There is no service key with id {key_id}.")
        if key.revoked_at is None:
            before = model_snapshot(key)
            key.revoked_at = timezone.now()
            key.save(update_fields=["revoked_at"])
            audit_record(
                action="service_key.revoke",
                actor=actor,
                target=key,
                before=before,
                after=model_snapshot(key),
                request=request,
            )
    return key


def service_key_authenticate(*, raw_key: str) -> ServiceKey:
    """The key a presented ``gcrm_…`` string belongs to, or ``Unauthenticated`` with the reason."""
    match = KEY_RE.match(raw_key or "")
    if match is None:
        raise Unauthenticated("The API key is malformed; it reads gcrm_<prefix>_<secret>.", code="invalid_key")
    key = ServiceKey.objects.filter(prefix=match["prefix"]).first()
    # Compare a hash even when the prefix is unknown, so timing does not reveal which prefixes exist.
    expected = key.key_hash if key is not None else "0" * 64
    if not hmac.compare_digest(expected, _hash(match["secret"])) or key is None:
        raise Unauthenticated("The API key is not valid.", code="invalid_key")
    now = timezone.now()
    if key.revoked_at is not None:
        raise Unauthenticated("The API key was revoked.", code="key_revoked")
    if key.expires_at is not None and key.expires_at <= now:
        raise Unauthenticated("The API key has expired.", code="key_expired")
    ServiceKey.objects.filter(pk=key.pk).update(last_used_at=now)
    key.last_used_at = now
    return key


def service_key_record_use(
    *, key: ServiceKey | None, request: HttpRequest, outcome: str = AuditEvent.Outcome.SUCCESS, message: str = ""
) -> None:
    """Every API request made with a key (or refused for its key) goes to the audit log."""
    actor = Actor.api_key(key.pk, key.name) if key is not None else Actor.api_key("", "unknown key")
    audit_record(
        action="api.request",
        actor=actor,
        target=key,
        outcome=outcome,
        message=message or f"{request.method} {request.path}",
        request=request,
    )
