"""Requesting a new client organisation: validation, idempotency and the one row every entry point creates."""

from __future__ import annotations

import hashlib
import json

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils.text import slugify

from ghostcrm.audit.services import Actor, audit_record, model_snapshot
from ghostcrm.core.errors import ApplicationError, Conflict, ValidationError
from ghostcrm.organizations.models import Organization
from ghostcrm.organizations.schema_names import schema_name_from_slug, validate_schema_name
from tenants import plans
from tenants.models import IdempotencyRecord, Operation
from tenants.services.lifecycle import LIVE_STATUSES, provisioning_enqueue_on_commit
from tenants.services.operations import now

Status = Organization.Status
MAX_NAME_LENGTH = 200


class IdempotencyKeyReused(ApplicationError):
    """The same ``Idempotency-Key`` came back with a different request body."""

    code = "idempotency_key_reused"
    http_status = 422


def organization_validate_request(*, name: str, admin_email: str, plan_code: str = "") -> dict[str, str]:
    """Normalise and check a request; ``ValidationError`` with per-field messages when it cannot succeed."""
    errors: dict[str, list[str]] = {}
    name = " ".join((name or "").split())
    admin_email = (admin_email or "").strip().lower()
    plan_code = (plan_code or "").strip()
    slug = slugify(name)[:63].strip("-")
    schema_name = schema_name_from_slug(slug)
    if not name:
        errors.setdefault("name", []).append("Give the client's name.")
    elif len(name) > MAX_NAME_LENGTH:
        errors.setdefault("name", []).append(f"Use at most {MAX_NAME_LENGTH} characters.")
    elif not slug:
        errors.setdefault("name", []).append("The name needs at least one letter or digit.")
    else:
        try:
            validate_schema_name(schema_name)
        except DjangoValidationError as exc:
            errors.setdefault("name", []).append(
                f"The name gives the schema name {schema_name!r}, which cannot be used: {' '.join(exc.messages)}"
            )
    try:
        validate_email(admin_email)
    except DjangoValidationError:
        errors.setdefault("admin_email", []).append(f"{admin_email!r} is not a valid e-mail address.")
    if plan_code:
        plan_error = _plan_code_error(plan_code)
        if plan_error:
            errors.setdefault("plan", []).append(plan_error)
    if errors:
        first = next(iter(errors.values()))[0]
        raise ValidationError(first, code="invalid", extra={"fields": errors})
    return {"name": name, "admin_email": admin_email, "plan_code": plan_code, "slug": slug, "schema_name": schema_name}


def _plan_code_error(plan_code: str) -> str:
    """Why ``plan_code`` cannot be given to a new organisation ("" when it can): it must name an active plan."""
    if len(plan_code) > 64 or slugify(plan_code) != plan_code.lower():
        return "A plan code is up to 64 letters, digits, hyphens or underscores."
    codes = [code for code, _ in plans.active_plan_choices()]
    if plan_code in codes:
        return ""
    unknown = f"There is no active billing plan with the code {plan_code!r}"
    if not codes:
        return f"{unknown}; no active plans exist, so leave the plan empty."
    return f"{unknown}; use one of: {', '.join(codes)}."


def _fingerprint(data: dict[str, str]) -> str:
    canonical = json.dumps(
        {k: data[k] for k in ("name", "admin_email", "plan_code")}, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _replay(idempotency_key: str, fingerprint: str) -> Organization | None:
    record = IdempotencyRecord.objects.select_related("organization").filter(key=idempotency_key).first()
    if record is None:
        return None
    if record.fingerprint != fingerprint:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was already used with a different request body; use a new key.",
        )
    return record.organization


def organization_request(
    *,
    name: str,
    admin_email: str,
    plan_code: str = "",
    actor: Actor,
    idempotency_key: str | None = None,
    request: HttpRequest | None = None,
) -> Organization:
    """Record a new client organisation (``pending``) and enqueue its provisioning once committed.

    Idempotent: the same ``idempotency_key`` with the same data returns the first organisation (another body:
    ``IdempotencyKeyReused``); a second request for a live client with the same name and admin e-mail returns
    that client; the same name for another admin e-mail is a ``Conflict``. Concurrent requests for one client
    meet at the unique slug, so there is only ever one organisation and one schema.
    """
    data = organization_validate_request(name=name, admin_email=admin_email, plan_code=plan_code)
    fingerprint = _fingerprint(data)
    if idempotency_key:
        replayed = _replay(idempotency_key, fingerprint)
        if replayed is not None:
            return replayed
    try:
        with transaction.atomic(using="default"):
            requested_at = now()
            organization = Organization(
                name=data["name"],
                slug=data["slug"],
                schema_name=data["schema_name"],
                admin_email=data["admin_email"],
                plan_code=data["plan_code"],
                status=Status.PENDING,
                status_changed_at=requested_at,
            )
            organization.full_clean(validate_unique=False)
            organization.save(force_insert=True)
            if idempotency_key:
                IdempotencyRecord.objects.create(
                    key=idempotency_key, fingerprint=fingerprint, organization=organization
                )
            Operation.objects.create(
                organization=organization,
                step="request",
                to_status=Status.PENDING,
                outcome=Operation.Outcome.SUCCESS,
                started_at=requested_at,
                finished_at=requested_at,
                duration_ms=0,
                actor_label=actor.label,
            )
            audit_record(
                action="organization.request",
                actor=actor,
                target=organization,
                after=model_snapshot(organization),
                request=request,
            )
            provisioning_enqueue_on_commit(organization_id=organization.pk)
    except IntegrityError:
        # Another request for this client (or with this key) won the race: answer as a replay would.
        if idempotency_key:
            replayed = _replay(idempotency_key, fingerprint)
            if replayed is not None:
                return replayed
        existing = Organization.objects.filter(slug=data["slug"]).first()
        if existing is None:
            raise
        existing = _same_client_or_conflict(existing, data)
        if idempotency_key:
            _bind_key(idempotency_key, fingerprint, existing)
        return existing
    except DjangoValidationError as exc:
        raise ValidationError(" ".join(exc.messages), extra={"fields": exc.message_dict}) from None
    return organization


def _bind_key(idempotency_key: str, fingerprint: str, organization: Organization) -> None:
    """A key first used for a client that already existed now stands for that request (another body: 422)."""
    try:
        with transaction.atomic(using="default"):
            IdempotencyRecord.objects.create(key=idempotency_key, fingerprint=fingerprint, organization=organization)
    except IntegrityError:
        _replay(idempotency_key, fingerprint)  # bound meanwhile by a concurrent request: same body or 422


def _same_client_or_conflict(existing: Organization, data: dict[str, str]) -> Organization:
    if existing.admin_email == data["admin_email"] and existing.status in LIVE_STATUSES:
        return existing
    raise Conflict(
        f"An organisation with the slug {existing.slug!r} already exists ({existing.status}).",
        code="organization_exists",
        extra={"fields": {"name": [f"An organisation named {existing.name!r} already exists."]}},
    )


def organization_request_preview(*, name: str, admin_email: str, plan_code: str = "") -> Organization | None:
    """What ``organization_request`` would do, without doing it: ``None`` when it would create an organisation,
    the existing one it would return (same client, same admin e-mail, still live), or the ``ValidationError`` /
    ``Conflict`` it would raise. Forms call this so they answer as the API does."""
    data = organization_validate_request(name=name, admin_email=admin_email, plan_code=plan_code)
    existing = Organization.objects.filter(slug=data["slug"]).first()
    return None if existing is None else _same_client_or_conflict(existing, data)
