"""Reading the audit log: verifying the keyed chain against its archives and its published checkpoint."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.conf import settings
from django.utils import timezone

from ghostcrm.audit import keys
from ghostcrm.audit.models import AuditArchive, AuditChainHead, AuditEvent
from ghostcrm.audit.sealing import AuditChainError, Checkpoint, audit_checkpoint_latest, link_valid
from ghostcrm.audit.services import GENESIS_HASH

DEFAULT_SEAL_MAX_LAG = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class ChainReport:
    checked: int
    broken_at: int | None = None  # sequence number of the first bad link
    reason: str = ""
    first_sequence: int = 1  # where the live log starts (after the archived events)
    checkpoint: Checkpoint | None = None
    alarms: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.broken_at is None


@dataclass
class ChainWalk:
    """The walk's position: the sequence expected next and the hash it must link to."""

    expected: int
    previous: str
    checked: int = 0


class ChainBroken(Exception):
    def __init__(self, at: int, reason: str) -> None:
        super().__init__(reason)
        self.at, self.reason = at, reason


def seal_max_lag() -> dt.timedelta:
    return getattr(settings, "AUDIT_SEAL_MAX_LAG", DEFAULT_SEAL_MAX_LAG)


def audit_unsealed_overdue(*, now: dt.datetime | None = None) -> int:
    """How many events are still unsealed longer after they were written than the sealer's bound allows."""
    cutoff = (now or timezone.now()) - seal_max_lag()
    return AuditEvent.objects.filter(sequence__isnull=True, occurred_at__lt=cutoff).count()


def archive_signed_fields(archive: AuditArchive) -> dict[str, object]:
    return {
        "created_at": archive.created_at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
        "first_sequence": archive.first_sequence,
        "last_sequence": archive.last_sequence,
        "first_prev_hash": archive.first_prev_hash,
        "last_hash": archive.last_hash,
        "event_count": archive.event_count,
        "file_name": archive.file_name,
        "file_sha256": archive.file_sha256,
        "key_id": archive.key_id,
    }


def archive_signature_valid(archive: AuditArchive) -> bool:
    return keys.signature_valid(archive.key_id, archive_signed_fields(archive), archive.signature)


def _check_archives(walk: ChainWalk) -> None:
    """The archive checkpoints, oldest first: each signed, each starting where the one before ended."""
    for archive in AuditArchive.objects.order_by("last_sequence"):
        if not archive_signature_valid(archive):
            raise ChainBroken(
                archive.first_sequence, f"the archive checkpoint of {archive.file_name} is not validly signed"
            )
        if archive.first_sequence != walk.expected or archive.first_prev_hash != walk.previous:
            raise ChainBroken(
                walk.expected,
                f"events from #{walk.expected} have no archive checkpoint (the next one, {archive.file_name}, "
                f"starts at #{archive.first_sequence})",
            )
        walk.expected, walk.previous = archive.last_sequence + 1, archive.last_hash


def check_link(event: AuditEvent, walk: ChainWalk) -> None:
    """One link: in sequence, linked to the one before it, and its HMAC made with a configured key."""
    if event.sequence != walk.expected:
        reason = f"event #{walk.expected} is missing (deleted from the log)"
        if walk.expected == 1 or AuditArchive.objects.filter(last_sequence=walk.expected - 1).exists():
            reason += "; no archive checkpoint covers it"
        raise ChainBroken(walk.expected, reason)
    if event.prev_hash != walk.previous:
        raise ChainBroken(walk.expected, f"event #{walk.expected} does not link to the event before it")
    if keys.key_by_id(event.key_id) is None:
        raise ChainBroken(
            walk.expected,
            f"event #{walk.expected} was sealed with key {event.key_id!r}, which AUDIT_HMAC_KEYS does not list",
        )
    if not link_valid(event):
        raise ChainBroken(walk.expected, f"event #{walk.expected} was altered after it was sealed (HMAC mismatch)")
    walk.previous, walk.expected, walk.checked = event.hash or "", walk.expected + 1, walk.checked + 1


def _walk_events(
    events: Iterable[AuditEvent], walk: ChainWalk, checkpoint: Checkpoint | None, progress: Callable[[int], None] | None
) -> None:
    for event in events:
        check_link(event, walk)
        if checkpoint is not None and event.sequence == checkpoint.sequence and event.hash != checkpoint.hash:
            raise ChainBroken(
                checkpoint.sequence,
                f"event #{checkpoint.sequence} differs from the checkpoint published at {checkpoint.time}: "
                "the log was rewritten",
            )
        if progress is not None:
            progress(1)


def _check_end(walk: ChainWalk, checkpoint: Checkpoint | None) -> None:
    last = walk.expected - 1
    if checkpoint is not None and checkpoint.sequence > last:
        raise ChainBroken(
            last + 1,
            f"the checkpoint published at {checkpoint.time} records event #{checkpoint.sequence}, but the log "
            f"ends at #{last}: events were removed (truncated)",
        )
    head = AuditChainHead.objects.filter(pk=1).first()
    if head is None:
        if last:
            raise ChainBroken(last + 1, "the chain's head row is missing")
        return
    if head.sequence != last or head.hash != walk.previous:
        raise ChainBroken(
            last + 1, f"the chain ends at #{last} but its head records #{head.sequence}: events were removed"
        )


def _checkpoint() -> Checkpoint | None:
    checkpoint = audit_checkpoint_latest()
    if checkpoint is not None and not checkpoint.signature_valid:
        raise ChainBroken(checkpoint.sequence, f"the checkpoint file {checkpoint.name} is not validly signed")
    return checkpoint


def _alarms(walk: ChainWalk, checkpoint: Checkpoint | None) -> tuple[str, ...]:
    alarms = []
    if checkpoint is None and walk.checked:
        alarms.append("no checkpoint has been published to the backups storage: truncation cannot be detected")
    overdue = audit_unsealed_overdue()
    if overdue:
        alarms.append(
            f"{overdue} event(s) unsealed for longer than {int(seal_max_lag().total_seconds())} s: "
            "is the audit sealing job running?"
        )
    return tuple(alarms)


def audit_chain_verify(*, progress: Callable[[int], None] | None = None, chunk_size: int = 2000) -> ChainReport:
    """Walk the sealed chain from the newest archive checkpoint, and report the first link that does not hold.

    The chain must reach the newest published checkpoint with the same hash (truncation or a rewrite is
    found even when the rewriter had the database), and end at the head row. Alarms: no checkpoint
    published, or events left unsealed for longer than ``AUDIT_SEAL_MAX_LAG``.
    """
    walk = ChainWalk(expected=1, previous=GENESIS_HASH)
    checkpoint: Checkpoint | None = None
    try:
        _check_archives(walk)
        first = walk.expected
        checkpoint = _checkpoint()
        events = AuditEvent.objects.filter(sequence__isnull=False).order_by("sequence").iterator(chunk_size=chunk_size)
        _walk_events(events, walk, checkpoint, progress)
        _check_end(walk, checkpoint)
    except ChainBroken as broken:
        return ChainReport(walk.checked, broken.at, broken.reason, checkpoint=checkpoint)
    except AuditChainError as exc:
        return ChainReport(walk.checked, walk.expected, str(exc))
    return ChainReport(walk.checked, first_sequence=first, checkpoint=checkpoint, alarms=_alarms(walk, checkpoint))
