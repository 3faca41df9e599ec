"""Writes to the server registry: add (after the checks), change, state changes, and the primary's registration.

Every write is audited (``fleet.server.*``). A server is saved only after it passed every check of
``connection.server_verify``; a failure saves nothing and raises one sentence.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone

from ghostcrm.audit.services import Actor, audit_record, model_snapshot
from ghostcrm.core.errors import NotFound, ValidationError
from tenants.fleet.connection import ServerAddress, ServerProbe, parse_server_url, server_verify, wal_warning
from tenants.fleet.models import DEFAULT_CAPACITY, PRIMARY_SERVER_NAME, TenantServer, validate_server_name

# The verb of each state, as the commands and audit actions spell it.
STATE_VERBS = {"open": "open", "draining": "drain", "closed": "close"}


@dataclass(frozen=True)
class ServerCheck:
    """A server that passed the checks: what it answered, and a warning that does not refuse it."""

    address: ServerAddress
    probe: ServerProbe
    warning: str


def server_check(*, address: ServerAddress) -> ServerCheck:
    probe = server_verify(address)
    return ServerCheck(address=address, probe=probe, warning=wal_warning(probe, where=address.where))


def server_check_saved(*, server: TenantServer) -> ServerCheck:
    """The same checks for a registered server (the admin's "check now")."""
    return server_check(address=parse_server_url(server.url, password=server.password))


def _full_clean(server: TenantServer) -> None:
    try:
        server.full_clean()
    except DjangoValidationError as exc:
        fields = {field: [str(m) for m in messages] for field, messages in exc.message_dict.items()}
        sentence = " ".join(message for messages in fields.values() for message in messages)
        raise ValidationError(sentence, extra={"fields": fields}) from None


def server_add(
    *,
    name: str,
    url: str,
    actor: Actor,
    capacity: int | None = None,
    notes: str = "",
    password: str | None = None,
    checked: ServerCheck | None = None,
    request: HttpRequest | None = None,
) -> tuple[TenantServer, ServerCheck]:
    """Check the server, then register it. ``checked`` is a check the caller just ran for this URL (the admin's
    form runs it while validating, so the page can show the sentence next to the field)."""
    try:
        validate_server_name(name)
    except DjangoValidationError as exc:
        raise ValidationError(" ".join(exc.messages)) from None
    if TenantServer.objects.filter(name=name).exists():
        raise ValidationError(f"A server named {name} is registered already.", code="server_exists")
    address = parse_server_url(url, password=password)
    server = TenantServer(
        name=name,
        url=address.url,
        password=address.password,
        capacity=DEFAULT_CAPACITY if capacity is None else capacity,
        notes=notes,
        state_changed_at=timezone.now(),
    )
    _full_clean(server)
    check = checked or server_check(address=address)
    try:
        with transaction.atomic(using="default"):
            _save_new(server, actor=actor, warning=check.warning, request=request)
    except IntegrityError:  # the same name registered meanwhile by someone else
        raise ValidationError(f"A server named {name} is registered already.", code="server_exists") from None
    return server, check


def _save_new(server: TenantServer, *, actor: Actor, warning: str, request: HttpRequest | None) -> None:
    server.save()
    audit_record(
        action="fleet.server.add",
        actor=actor,
        target=server,
        after=model_snapshot(server),
        message=warning,
        request=request,
    )


def server_change(
    *,
    server_id: int,
    actor: Actor,
    url: str,
    capacity: int,
    notes: str,
    password: str | None = None,
    checked: ServerCheck | None = None,
    request: HttpRequest | None = None,
) -> TenantServer:
    """Change a server's URL, capacity or notes. A new URL or password is checked again before it is saved;
    ``password=None`` keeps the stored one."""
    with transaction.atomic(using="default"):
        server = TenantServer.objects.select_for_update().get(pk=server_id)
        before = model_snapshot(server)
        address = parse_server_url(url, password=password or server.password)
        reconnects = address.url != server.url or address.password != server.password
        if reconnects and server.name == PRIMARY_SERVER_NAME:
            raise ValidationError("The primary server's URL follows TENANT_DATABASE_URL; change the setting instead.")
        if reconnects and checked is None:
            server_check(address=address)
        server.url, server.password = address.url, address.password
        server.capacity, server.notes = capacity, notes
        _full_clean(server)
        server.save()
        audit_record(
            action="fleet.server.change",
            actor=actor,
            target=server,
            before=before,
            after=model_snapshot(server),
            request=request,
        )
    return server


def server_state_set(
    *,
    name: str,
    state: str,
    actor: Actor,
    reason: str = "",
    request: HttpRequest | None = None,
) -> tuple[TenantServer, bool]:
    """Open, drain or close a server. Returns the server and whether its state changed (setting the state it
    already has changes and records nothing). Today the state is recorded only: placement reads it later."""
    if state not in TenantServer.State.values:
        raise ValidationError(f"{state} is not a server state; use one of {', '.join(TenantServer.State.values)}.")
    with transaction.atomic(using="default"):
        server = TenantServer.objects.select_for_update().filter(name=name).first()
        if server is None:
            raise NotFound(f"No tenant database server is named {name}.")
        if server.state == state:
            return server, False
        before = {"state": server.state}
        server.state, server.state_changed_at = state, timezone.now()
        server.save(update_fields=["state", "state_changed_at", "updated_at"])
        audit_record(
            action=f"fleet.server.{STATE_VERBS[state]}",
            actor=actor,
            target=server,
            before=before,
            after={"state": state},
            message=reason,
            request=request,
        )
    return server, True


def primary_register(*, url: str) -> tuple[TenantServer, bool]:
    """Register the server of ``url`` (TENANT_DATABASE_URL) as ``primary``, or bring its URL and password in
    line with it. Idempotent: returns the server and whether anything was written. No probe: ``migrate`` has
    just used this server."""
    address = parse_server_url(url)
    with transaction.atomic(using="default"):
        server = TenantServer.objects.select_for_update().filter(name=PRIMARY_SERVER_NAME).first()
        if server is not None and server.url == address.url and server.password == address.password:
            return server, False
        if server is None:
            server = TenantServer(name=PRIMARY_SERVER_NAME, state_changed_at=timezone.now())
            action, before = "fleet.server.add", None
        else:
            action, before = "fleet.server.change", model_snapshot(server)
        server.url, server.password = address.url, address.password
        _full_clean(server)
        server.save()
        audit_record(
            action=action,
            actor=Actor.system("migrate"),
            target=server,
            before=before,
            after=model_snapshot(server),
            message="the server of TENANT_DATABASE_URL",
        )
    return server, True
