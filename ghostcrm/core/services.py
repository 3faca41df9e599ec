"""Writes owned by the core app: system settings and re-encryption of secrets at rest."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from cryptography.fernet import InvalidToken
from django.apps import apps
from django.db import models, router, transaction
from django.db.models.functions import Cast
from django.http import HttpRequest

from ghostcrm.audit.services import Actor, audit_record, model_snapshot
from ghostcrm.core.errors import NotFound, ValidationError, full_clean_or_raise
from ghostcrm.core.fields import (
    configured_keys,
    describe_keys,
    is_current,
    key_fingerprint,
    multi_fernet,
    newest_fernet,
)
from ghostcrm.core.models import SystemSetting
from ghostcrm.core.system_settings import REGISTRY, SettingSpec

# --- System settings ---------------------------------------------------------------------------------


def _spec(key: str) -> SettingSpec:
    spec = REGISTRY.get(key)
    if spec is None:
        raise ValidationError(
            f"{key!r} is not a known system setting; known settings: {', '.join(sorted(REGISTRY)) or 'none'}.",
            extra={"fields": {"key": ["unknown system setting"]}},
        )
    return spec


def system_setting_set(*, key: str, value: Any, actor: Actor, request: HttpRequest | None = None) -> SystemSetting:
    """Store an admin's value for a declared setting (text, or a value of the setting's type), audited."""
    spec = _spec(key)
    raw = value if isinstance(value, str) else spec.serialize(value)
    with transaction.atomic(using=router.db_for_write(SystemSetting)):
        setting = SystemSetting.objects.select_for_update().filter(key=key).first()
        before = model_snapshot(setting) if setting is not None else None
        if setting is None:
            setting = SystemSetting(key=key)
        setting.value = raw
        if actor.type == "user" and actor.id:
            setting.updated_by_id = int(actor.id)  # type: ignore[attr-defined]
        full_clean_or_raise(setting)
        setting.save()
        audit_record(
            action="system_setting.set", actor=actor, target=setting, before=before, after=model_snapshot(setting),
            request=request,
        )  # fmt: skip
    return setting


def system_setting_reset(*, key: str, actor: Actor, request: HttpRequest | None = None) -> None:
    """Forget the stored value so the declared default applies again, audited."""
    _spec(key)
    with transaction.atomic(using=router.db_for_write(SystemSetting)):
        setting = SystemSetting.objects.select_for_update().filter(key=key).first()
        if setting is None:
            raise NotFound(f"System setting {key!r} has no stored value; it already uses its default.")
        before = model_snapshot(setting)
        audit_record(action="system_setting.reset", actor=actor, target=setting, before=before, request=request)
        setting.delete()


# --- Encryption keys ---------------------------------------------------------------------------------


@dataclass
class FieldRotation:
    label: str
    rotated: int = 0
    current: int = 0
    failed: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"rotated": self.rotated, "current": self.current, "failed": len(self.failed)}


@dataclass
class RotationReport:
    key_fingerprint: str
    fields: list[FieldRotation]
    duration_ms: int = 0

    @property
    def rotated(self) -> int:
        return sum(f.rotated for f in self.fields)

    @property
    def current(self) -> int:
        return sum(f.current for f in self.fields)

    @property
    def failed(self) -> int:
        return sum(len(f.failed) for f in self.fields)

    @property
    def ok(self) -> bool:
        return self.failed == 0


def encrypted_fields() -> list[tuple[type[models.Model], models.Field]]:
    """Every encrypted column of every installed model (fields with ``encrypted = True``)."""
    found = []
    for model in apps.get_models():
        if not model._meta.managed or model._meta.proxy:
            continue
        for model_field in model._meta.concrete_fields:
            if getattr(model_field, "encrypted", False):
                found.append((model, model_field))
    return found


def encrypted_values_count() -> int:
    return sum(model._base_manager.filter(**{f"{f.attname}__isnull": False}).count() for model, f in encrypted_fields())


def _raw_batches(
    model: type[models.Model], model_field: models.Field, batch_size: int
) -> Iterator[list[tuple[Any, str]]]:
    """(pk, stored token) pairs in pk order, read as plain text so nothing is decrypted on the way."""
    manager = model._base_manager
    last_pk = None
    while True:
        queryset = manager.filter(**{f"{model_field.attname}__isnull": False}).order_by("pk")
        if last_pk is not None:
            queryset = queryset.filter(pk__gt=last_pk)
        # Cast to plain text: the encrypted field's decrypting converter does not run.
        rows = list(
            queryset.annotate(_token=Cast(model_field.attname, models.TextField())).values_list("pk", "_token")[
                :batch_size
            ]
        )
        if not rows:
            return
        yield rows
        last_pk = rows[-1][0]


def encryption_keys_rotate(
    *, actor: Actor, batch_size: int = 500, progress: Callable[[int], None] | None = None
) -> RotationReport:
    """Re-encrypt every stored encrypted value with the newest key in FIELD_ENCRYPTION_KEYS.

    Values already under the newest key are left alone, so a re-run after an interruption only finishes
    the rest. A value no configured key can decrypt is counted and named, and the others carry on.
    Each batch is one transaction with its rows locked, so a concurrent write is never overwritten.
    """
    started = time.monotonic()
    fernet = multi_fernet()
    newest_fernet()  # fail early, before any write, if a configured key is malformed
    report = RotationReport(key_fingerprint=key_fingerprint(configured_keys()[0]), fields=[])
    for model, model_field in encrypted_fields():
        outcome = FieldRotation(label=f"{model._meta.label}.{model_field.name}")
        report.fields.append(outcome)
        database = router.db_for_write(model)
        for batch in _raw_batches(model, model_field, batch_size):
            with transaction.atomic(using=database):
                locked = dict(
                    model._base_manager.using(database)
                    .select_for_update()
                    .filter(pk__in=[pk for pk, _ in batch])
                    .annotate(_token=Cast(model_field.attname, models.TextField()))
                    .values_list("pk", "_token")
                )
                for pk, token in locked.items():
                    if token is None:
                        continue
                    if is_current(token):
                        outcome.current += 1
                        continue
                    try:
                        rotated = fernet.rotate(token.encode("ascii")).decode("ascii")
                    except (InvalidToken, UnicodeEncodeError):
                        outcome.failed.append(str(pk))
                        continue
                    # Written as a plain-text value: the token is already encrypted, the field must not encrypt again.
                    model._base_manager.using(database).filter(pk=pk).update(
                        **{model_field.attname: models.Value(rotated, output_field=models.TextField())}
                    )
                    outcome.rotated += 1
            if progress is not None:
                progress(len(batch))
    report.duration_ms = int((time.monotonic() - started) * 1000)
    failures = "; ".join(f"{f.label} rows {', '.join(f.failed[:20])}" for f in report.fields if f.failed)
    audit_record(
        action="encryption.keys_rotate",
        actor=actor,
        target_type="encryption_keys",
        target_repr=f"newest key {report.key_fingerprint}",
        after={"key_fingerprint": report.key_fingerprint, "fields": {f.label: f.as_dict() for f in report.fields}},
        outcome="success" if report.ok else "failure",
        message=(
            f"{report.rotated} re-encrypted, {report.current} already current, {report.failed} undecryptable"
            + (f" ({failures}) with {describe_keys()}" if failures else "")
        ),
        duration_ms=report.duration_ms,
    )
    return report
