"""Names and keys of the template engine: schema names, tenant roles, the migrator login, lock keys."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.exceptions import ValidationError as DjangoValidationError

from ghostcrm.core.errors import ValidationError
from tenants.schema_names import validate_schema_name

LOCK_NAMESPACE = b"ghostcrm.tenant_sql\x00"
TENANT_ID_NAMESPACE = uuid.UUID("5b0f7b8e-3c1e-4f55-9d0e-6f1b7c2a9e41")
ROLE_SUFFIX_LEN = len("_000000_own")
MIGRATOR_SUFFIX = "_migrator"


@dataclass(frozen=True)
class TenantRoles:
    owner: str
    app: str


def schema_name_check(schema: str) -> str:
    """``schema`` if it is a valid client schema name, else our ``ValidationError`` (before any SQL runs)."""
    try:
        validate_schema_name(schema)
    except DjangoValidationError as exc:
        raise ValidationError(" ".join(exc.messages), code="invalid_schema_name") from None
    return schema


def tenant_roles(schema: str) -> TenantRoles:
    """The owner and app role names of a schema: deterministic, <= 63 characters, unique by a hash suffix."""
    schema_name_check(schema)
    prefix = settings.TENANT_ROLE_PREFIX
    room = 63 - len(prefix) - 1 - ROLE_SUFFIX_LEN
    if room < 3:
        raise ImproperlyConfigured(f"TENANT_ROLE_PREFIX {prefix!r} is too long: keep it to 40 characters.")
    digest = hashlib.sha256(schema.encode()).hexdigest()[:6]
    stem = f"{prefix}_{schema[:room]}_{digest}"
    return TenantRoles(owner=f"{stem}_own", app=f"{stem}_app")


def migrator_role() -> str:
    """The login that runs template SQL: ``TENANT_MIGRATOR_ROLE``, which must carry the role prefix.

    Tenant roles never end in ``_migrator`` (they end in ``_own`` or ``_app``), so the names cannot clash.
    """
    prefix = settings.TENANT_ROLE_PREFIX
    name = str(getattr(settings, "TENANT_MIGRATOR_ROLE", "") or f"{prefix}{MIGRATOR_SUFFIX}")
    if not name.startswith(f"{prefix}_") or len(name) > 63 or name.endswith(("_own", "_app")):
        raise ImproperlyConfigured(
            f"TENANT_MIGRATOR_ROLE {name!r} must start with TENANT_ROLE_PREFIX and '_' ({prefix}_...), "
            "be at most 63 characters and not end in _own or _app."
        )
    return name


def schema_lock_key(schema: str) -> int:
    """A stable signed 64-bit advisory-lock key for a schema (the same in every process and release)."""
    digest = hashlib.sha256(LOCK_NAMESPACE + schema.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def scratch_tenant_id(schema: str) -> str:
    """``${tenant_id}`` for a schema that is not a registered tenant: a stable UUID derived from its name."""
    return str(uuid.uuid5(TENANT_ID_NAMESPACE, schema))
