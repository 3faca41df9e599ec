"""Sealing the audit log: chaining appended rows in order, and publishing signed checkpoints.

``audit_record`` appends rows with no shared lock. ``audit_seal`` (a periodic job every few seconds, and
``audit_verify`` before it verifies) takes the unsealed rows in the order they were appended and gives
each its ``sequence``, the previous link's hash and its own HMAC. Only the sealer locks the head row, so
writers never wait for one another.

After sealing, the head is published as a signed checkpoint file in the ``backups`` storage, outside the
main database: ``audit_verify`` compares the chain with it, so deleting the newest rows and rewinding the
head (truncation) is found even by someone with full rights on the database.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any

from django.core.files.base import ContentFile
from django.core.files.storage import Storage, storages
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from ghostcrm.audit import keys
from ghostcrm.audit.models import AuditChainHead, AuditEvent
from ghostcrm.audit.services import GENESIS_HASH

BACKUPS_STORAGE = "backups"
CHECKPOINT_DIR = "audit/checkpoints"
CHECKPOINTS_KEPT = 3
SEAL_BATCH = 5000
LINK_FIELDS = (
    "sequence", "occurred_at", "actor_type", "actor_id", "actor_label", "action", "target_type", "target_id",
    "target_repr", "organization_id", "before", "after", "ip_address", "user_agent", "request_id", "outcome",
    "message", "duration_ms", "prev_hash", "key_id",
)  # fmt: skip
_SEALED_FIELDS = ["sequence", "prev_hash", "hash", "key_id"]


class AuditChainError(RuntimeError):
    pass


@dataclasses.dataclass(frozen=True)
class SealResult:
    sealed: int
    head_sequence: int


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    sequence: int
    hash: str
    time: str
    key_id: str
    signature: str = ""
    name: str = ""

    def signed_fields(self) -> dict[str, Any]:
        return {"sequence": self.sequence, "hash": self.hash, "time": self.time, "key_id": self.key_id}

    @property
    def signature_valid(self) -> bool:
        return keys.signature_valid(self.key_id, self.signed_fields(), self.signature)


def link_fields(event: AuditEvent) -> dict[str, Any]:
    """What a link's HMAC covers: every field of the event except its id and its own hash."""
    values = {name: getattr(event, name) for name in LINK_FIELDS}
    values["occurred_at"] = event.occurred_at.astimezone(dt.UTC).isoformat(timespec="microseconds")
    values["organization_id"] = str(event.organization_id) if event.organization_id else None
    return values


def link_hash(event: AuditEvent, key: keys.AuditKey) -> str:
    return keys.sign(key, link_fields(event))


def link_valid(event: AuditEvent) -> bool:
    return event.hash is not None and keys.signature_valid(event.key_id, link_fields(event), event.hash)


def backups_storage() -> Storage:
    return storages[BACKUPS_STORAGE]


def _locked_chain_head() -> AuditChainHead:
    """The head row, locked for this transaction; created at genesis when nothing is sealed yet.

    A migration inserts the genesis row, but a flushed database (transactional tests, a data-only restore)
    lacks it. Recreating it is safe only while no event is sealed: otherwise the chain would fork.
    """
    head = AuditChainHead.objects.select_for_update().filter(pk=1).first()
    if head is not None:
        return head
    if AuditEvent.objects.filter(sequence__isnull=False).exists():
        raise AuditChainError(
            "The audit chain's head row is missing while sealed events exist; run `python manage.py audit_verify` "
            "and restore the row from a backup before sealing more events."
        )
    try:
        with transaction.atomic(using="default"):
            AuditChainHead.objects.create(pk=1, sequence=0, hash=GENESIS_HASH)
    except IntegrityError:
        pass  # a concurrent sealer created it first
    return AuditChainHead.objects.select_for_update().get(pk=1)


def audit_seal(*, limit: int = SEAL_BATCH) -> SealResult:
    """Chain up to ``limit`` unsealed events in the order they were appended, then publish a checkpoint."""
    key = keys.signing_key()
    with transaction.atomic(using="default"):
        head = _locked_chain_head()
        rows = list(AuditEvent.objects.filter(sequence__isnull=True).order_by("id")[:limit])
        sequence, previous = head.sequence, head.hash
        for event in rows:
            sequence += 1
            event.sequence, event.prev_hash, event.key_id = sequence, previous, key.id
            event.hash = previous = link_hash(event, key)
        if rows:
            _write_seals(rows)
            head.sequence, head.hash = sequence, previous
            head.save(update_fields=["sequence", "hash"])
    if rows:
        audit_checkpoint_publish()
    return SealResult(len(rows), sequence)


def _write_seals(rows: list[AuditEvent]) -> None:
    """One parameterised UPDATE per row, sent as a batch (executemany): plain SQL that every engine runs.

    The model's own queryset refuses updates (append-only); sealing only fills in fields left empty, and
    the ``sequence IS NULL`` guard keeps it from ever rewriting a sealed row.
    """
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(name)} = %s" for name in _SEALED_FIELDS)
    statement = (
        f"UPDATE {quote(AuditEvent._meta.db_table)} SET {assignments} "  # names from the model, values as parameters
        f"WHERE {quote('id')} = %s AND {quote('sequence')} IS NULL"
    )
    params = [[*(getattr(row, name) for name in _SEALED_FIELDS), row.pk] for row in rows]
    with connection.cursor() as cursor:
        cursor.executemany(statement, params)


def audit_checkpoint_publish() -> Checkpoint:
    """Write the current head as a signed checkpoint file, and prune all but the newest few.

    The head is read under its lock, so two sealers publish in chain order.
    """
    key = keys.signing_key()
    with transaction.atomic(using="default"):
        head = _locked_chain_head()
        unsigned = Checkpoint(
            head.sequence, head.hash, timezone.now().astimezone(dt.UTC).isoformat(timespec="seconds"), key.id
        )
        checkpoint = dataclasses.replace(unsigned, signature=keys.sign(key, unsigned.signed_fields()))
        storage = backups_storage()
        latest = audit_checkpoint_latest()
        if latest is not None and latest.sequence >= checkpoint.sequence:
            return latest
        name = f"{CHECKPOINT_DIR}/checkpoint-{checkpoint.sequence:015d}.json"
        body = json.dumps({**checkpoint.signed_fields(), "signature": checkpoint.signature}, indent=2)
        storage.save(name, ContentFile(body.encode("utf-8")))
    for old in _checkpoint_names(storage)[:-CHECKPOINTS_KEPT]:
        storage.delete(f"{CHECKPOINT_DIR}/{old}")
    return checkpoint


def _checkpoint_names(storage: Storage) -> list[str]:
    try:
        _dirs, files = storage.listdir(CHECKPOINT_DIR)
    except FileNotFoundError:
        return []
    return sorted(name for name in files if name.startswith("checkpoint-") and name.endswith(".json"))


def audit_checkpoint_latest() -> Checkpoint | None:
    """The newest published checkpoint, or None when none was ever published. Its signature is not checked."""
    storage = backups_storage()
    names = _checkpoint_names(storage)
    if not names:
        return None
    name = f"{CHECKPOINT_DIR}/{names[-1]}"
    with storage.open(name, "rb") as handle:
        raw = handle.read()
    try:
        data = json.loads(raw.decode("utf-8"))
        return Checkpoint(
            sequence=int(data["sequence"]),
            hash=str(data["hash"]),
            time=str(data["time"]),
            key_id=str(data["key_id"]),
            signature=str(data.get("signature", "")),
            name=name,
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise AuditChainError(f"the checkpoint file {name} is unreadable ({exc}): it was altered") from exc
