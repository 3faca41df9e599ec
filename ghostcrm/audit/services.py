"""Writing the audit log: ``audit_record`` is the one way every capability records what happened."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import json
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, models, transaction
from django.http import HttpRequest
from django.utils import timezone

from ghostcrm.audit.models import AuditChainHead, AuditEvent

GENESIS_HASH = "0" * 64
REDACTED = "[redacted]"
# Field names never copied into before/after snapshots; models add their own with `audit_redacted_fields`.
ALWAYS_REDACTED = frozenset({"password", "secret", "secrets", "token", "token_hash", "key_hash", "secret_blob"})
HASHED_FIELDS = (
    "sequence", "occurred_at", "actor_type", "actor_id", "actor_label", "action", "target_type", "target_id",
    "target_repr", "organization_id", "before", "after", "ip_address", "user_agent", "request_id", "outcome",
    "message", "duration_ms", "prev_hash",
)  # fmt: skip


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


def client_ip(request: HttpRequest) -> str | None:
    """The client's address, as the audit log, session records and the sign-in lockout all see it.

    Behind ``TRUSTED_PROXY_COUNT`` reverse proxies, each appending the address it received from to
    X-Forwarded-For, the client is the entry that many places from the right; entries further left were
    written by the client and are never trusted (they would let anyone dodge the per-address lockout).
    Without proxies (0, the default) it is REMOTE_ADDR.
    """
    proxies = int(getattr(settings, "TRUSTED_PROXY_COUNT", 0))
    if proxies > 0:
        hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
        if len(hops) >= proxies:  # fewer hops: the request did not come through every proxy, use the peer
            try:
                return str(ipaddress.ip_address(hops[-proxies]))
            except ValueError:
                pass  # a proxy that writes something else (host:port): fall back to the peer address
    return request.META.get("REMOTE_ADDR") or None


def _current_job_id() -> str:
    try:
        from rq import get_current_job
    except ImportError:  # pragma: no cover - rq is a requirement
        return ""
    job = get_current_job()
    return job.id if job is not None else ""


def compute_hash(fields: dict[str, Any]) -> str:
    canonical = json.dumps(fields, cls=DjangoJSONEncoder, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def event_hash_fields(event: AuditEvent) -> dict[str, Any]:
    values = {name: getattr(event, name) for name in HASHED_FIELDS}
    values["occurred_at"] = event.occurred_at.astimezone(dt.UTC).isoformat(timespec="microseconds")
    values["organization_id"] = str(event.organization_id) if event.organization_id else None
    return values


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
    inside an RQ job the job id is used.
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

    with transaction.atomic(using="default"):
        head = _locked_chain_head()
        event = AuditEvent(
            sequence=head.sequence + 1,
            occurred_at=timezone.now().replace(tzinfo=dt.UTC),
            actor_type=actor.type,
            actor_id=actor.id[:64],
            actor_label=actor.label[:255],
            action=action,
            target_type=target_type[:100],
            target_id=target_id[:64],
            target_repr=target_repr[:255],
            organization_id=uuid.UUID(str(organization_id)) if organization_id else None,
            before=_jsonable(before),
            after=_jsonable(after),
            ip_address=ip_address,
            user_agent=user_agent[:512],
            request_id=request_id[:64],
            outcome=outcome,
            message=message,
            duration_ms=duration_ms,
            prev_hash=head.hash,
        )
        event.hash = compute_hash(event_hash_fields(event))
        event.save()
        head.sequence, head.hash = event.sequence, event.hash
        head.save(update_fields=["sequence", "hash"])
    return event


class AuditChainError(RuntimeError):
    pass


def _locked_chain_head() -> AuditChainHead:
    """The chain's head row, locked for this transaction; created at genesis when the log is empty.

    A migration inserts the genesis row, but a flushed database (transactional tests, a data-only restore)
    lacks it. Recreating it is safe only while no event exists: otherwise the chain would fork.
    """
    head = AuditChainHead.objects.select_for_update().filter(pk=1).first()
    if head is not None:
        return head
    if AuditEvent.objects.exists():
        raise AuditChainError(
            "The audit chain's head row is missing while events exist; run `python manage.py audit_verify` "
            "and restore the row from a backup before recording more events."
        )
    try:
        with transaction.atomic(using="default"):
            AuditChainHead.objects.create(pk=1, sequence=0, hash=GENESIS_HASH)
    except IntegrityError:
        pass  # a concurrent writer created it first
    return AuditChainHead.objects.select_for_update().get(pk=1)


def _organization_of(target: models.Model) -> uuid.UUID | None:
    if target._meta.label_lower == "organizations.organization":
        return target.pk  # type: ignore[return-value]
    value = getattr(target, "organization_id", None)
    return value if isinstance(value, uuid.UUID) else None
