"""Writing the audit log: ``audit_record`` is the one way every capability records what happened."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import uuid
from dataclasses import dataclass
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.http import HttpRequest
from django.utils import timezone
from rq import get_current_job

from ghostcrm.audit.models import AuditEvent
from ghostcrm.core.http import client_ip

GENESIS_HASH = "0" * 64
NUL_REPLACEMENT = "\ufffd"  # what a NUL in any audit field becomes
REDACTED = "[redacted]"
# Field names never copied into before/after snapshots; models add their own with `audit_redacted_fields`.
ALWAYS_REDACTED = frozenset({"password", "secret", "secrets", "token", "token_hash", "key_hash", "secret_blob"})


@dataclass(frozen=True)
class Actor:
    type: str
    id: str = ""
    label: str = ""

    @classmethod
    def system(cls, name: str = "system") -> Actor:
        return cls(AuditEvent.ActorType.SYSTEM, "", name)

    @classmethod
    def for_user(cls, user: Any) -> Actor:
        if user is None or not getattr(user, "is_authenticated", False):
            return cls(AuditEvent.ActorType.USER, "", "anonymous")
        return cls(AuditEvent.ActorType.USER, str(user.pk), user.get_username())

    @classmethod
    def api_key(cls, key_id: Any, name: str) -> Actor:
        return cls(AuditEvent.ActorType.API_KEY, str(key_id), name)


def _jsonable(value: Any) -> Any:
    """The value as it will read back from a JSON column, so hashing before and after storage agree."""
    return None if value is None else json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def model_snapshot(obj: models.Model) -> dict[str, Any]:
    """Concrete field values of ``obj`` for before/after, with secrets redacted.

    A model may define ``audit_snapshot_extra() -> dict`` to add facts its redacted fields hide, e.g. which
    secret names are set (never their values).
    """
    redacted = ALWAYS_REDACTED | set(getattr(obj, "audit_redacted_fields", ()))
    data: dict[str, Any] = {}
    for field in obj._meta.concrete_fields:
        if field.name in redacted or getattr(field, "encrypted", False):
            data[field.name] = REDACTED
        else:
            data[field.attname] = field.value_from_object(obj)
    extra = getattr(obj, "audit_snapshot_extra", None)
    if callable(extra):
        data.update(extra())
    return _jsonable(data)


def _current_job_id() -> str:
    job = get_current_job()
    return job.id if job is not None else ""


def _clean_text(value: str, limit: int | None = None) -> str:
    """``value`` with NUL characters replaced (PostgreSQL text cannot hold them) and cut to ``limit``."""
    cleaned = value.replace("\x00", NUL_REPLACEMENT)
    return cleaned[:limit] if limit is not None else cleaned


def _clean_json(value: Any) -> Any:
    """A JSON value with every NUL in its strings and keys replaced, whatever the depth."""
    if isinstance(value, str):
        return _clean_text(value)
    if isinstance(value, dict):
        return {_clean_text(str(key)): _clean_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_clean_json(item) for item in value]
    return value


def _clean_ip(value: str | None) -> str | None:
    """A valid IP address, else None: the column is typed, and a header can carry anything."""
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def _organization_uuid(value: uuid.UUID | str | None) -> uuid.UUID | None:
    if not value:
        return None
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None  # not an organisation id at all (e.g. a mistyped path id): nothing to link


def audit_record(
    *,
    action: str,
    actor: Actor | None = None,
    target: models.Model | None = None,
    target_type: str = "",
    target_id: str = "",
    target_repr: str = "",
    organization_id: uuid.UUID | str | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    outcome: str = AuditEvent.Outcome.SUCCESS,
    message: str = "",
    duration_ms: int | None = None,
    request: HttpRequest | None = None,
    request_id: str = "",
    ip_address: str | None = None,
    user_agent: str = "",
) -> AuditEvent:
    """Append one event to the audit log, inside the caller's transaction when there is one.

    ``actor`` defaults to the request's user, else the system. ``target`` fills the target fields (and the
    organisation when the target is or belongs to one). ``request`` fills IP, user agent and request id;
    inside an RQ job the job id is used. The row is appended with no shared lock; the sealer chains it
    (``ghostcrm.audit.sealing.audit_seal``). No field ever carries a NUL character.
    """
    if request is not None:
        actor = actor or getattr(request, "audit_actor", None) or Actor.for_user(getattr(request, "user", None))
        ip_address = ip_address or client_ip(request)
        user_agent = user_agent or request.headers.get("User-Agent", "")
        request_id = request_id or getattr(request, "request_id", "")
    actor = actor or Actor.system()
    request_id = request_id or _current_job_id()
    if target is not None:
        target_type = target_type or target._meta.label_lower
        target_id = target_id or str(target.pk)
        target_repr = target_repr or str(target)
        if organization_id is None:
            organization_id = _organization_of(target)
    event = AuditEvent(
        occurred_at=timezone.now().replace(tzinfo=dt.UTC),
        actor_type=actor.type,
        actor_id=_clean_text(actor.id, 64),
        actor_label=_clean_text(actor.label, 255),
        action=_clean_text(action, 100),
        target_type=_clean_text(target_type, 100),
        target_id=_clean_text(target_id, 64),
        target_repr=_clean_text(target_repr, 255),
        organization_id=_organization_uuid(organization_id),
        before=_clean_json(_jsonable(before)),
        after=_clean_json(_jsonable(after)),
        ip_address=_clean_ip(ip_address),
        user_agent=_clean_text(user_agent, 512),
        request_id=_clean_text(request_id, 64),
        outcome=outcome,
        message=_clean_text(message),
        duration_ms=duration_ms,
    )
    event.save(using="default")
    return event


def _organization_of(target: models.Model) -> uuid.UUID | None:
    if target._meta.label_lower == "organizations.organization":
        return target.pk  # type: ignore[return-value]
    value = getattr(target, "organization_id", None)
    return value if isinstance(value, uuid.UUID) else None
