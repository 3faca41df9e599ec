"""Archiving old audit events behind a signed checkpoint, and verifying an archive file offline.

``audit_archive`` moves the oldest sealed events (older than N days) to a gzip-compressed JSON-lines file
in the ``backups`` storage, records an ``AuditArchive`` checkpoint row (last sequence, last hash, file
name, file SHA-256, signed with the audit key), then deletes them from the log; ``audit_verify`` starts
the live chain from that checkpoint. ``audit_archive_verify`` checks one file against its checkpoint
without reading the live log. The operations' ``retention run`` calls ``audit_archive``.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from django.core.files import File
from django.db import models, transaction
from django.db.models import Max, Min
from django.utils import timezone

from ghostcrm.audit import keys
from ghostcrm.audit.models import AuditArchive, AuditEvent
from ghostcrm.audit.sealing import LINK_FIELDS, backups_storage, link_fields
from ghostcrm.audit.selectors import (
    ChainBroken,
    ChainReport,
    ChainWalk,
    archive_signature_valid,
    archive_signed_fields,
    check_link,
)
from ghostcrm.audit.services import GENESIS_HASH, audit_record
from ghostcrm.core.errors import Conflict, NotFound, ValidationError

ARCHIVE_DIR = "audit/archives"


@dataclass(frozen=True)
class ArchiveResult:
    events: int
    first_sequence: int | None = None
    last_sequence: int | None = None
    file_name: str = ""
    file_sha256: str = ""
    dry_run: bool = False


def _start() -> tuple[int, str]:
    """The first sequence still in the log and the hash it links to (after the newest archive)."""
    newest = AuditArchive.objects.order_by("-last_sequence").first()
    return (newest.last_sequence + 1, newest.last_hash) if newest else (1, GENESIS_HASH)


def _range(older_than_days: int) -> tuple[int, int, str]:
    """The oldest run of sealed events, all older than the cutoff: (first, last, hash before first)."""
    first, previous = _start()
    cutoff = timezone.now() - dt.timedelta(days=older_than_days)
    sealed = AuditEvent.objects.filter(sequence__isnull=False, sequence__gte=first)
    newer = sealed.filter(occurred_at__gte=cutoff).aggregate(first=Min("sequence"))["first"]
    last = newer - 1 if newer is not None else (sealed.aggregate(last=Max("sequence"))["last"] or 0)
    return first, last, previous


def _archived_lines(first: int, last: int, previous: str) -> Iterator[bytes]:
    """The events first..last as JSON lines, each link checked on the way: a broken chain is not archived."""
    walk = ChainWalk(expected=first, previous=previous)
    events = AuditEvent.objects.filter(sequence__gte=first, sequence__lte=last).order_by("sequence")
    for event in events.iterator(chunk_size=2000):
        try:
            check_link(event, walk)
        except ChainBroken as broken:
            raise Conflict(
                f"The audit chain is broken at event #{broken.at} ({broken.reason}); nothing was archived. "
                "Run `python manage.py audit_verify`.",
                code="audit_chain_broken",
            ) from None
        line = {"id": event.pk, "hash": event.hash, **link_fields(event)}
        yield json.dumps(line, sort_keys=True, separators=(",", ":")).encode("utf-8") + b"\n"


def _write_archive(first: int, last: int, previous: str) -> tuple[str, str, str]:
    """Write the archive file; returns its storage name, SHA-256 and the last event's hash."""
    digest = hashlib.sha256()
    last_hash = previous
    with tempfile.TemporaryFile() as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as compressed:
            for line in _archived_lines(first, last, previous):
                compressed.write(line)
                last_hash = json.loads(line)["hash"]
        raw.seek(0)
        for chunk in iter(lambda: raw.read(1 << 20), b""):
            digest.update(chunk)
        raw.seek(0)
        name = backups_storage().save(f"{ARCHIVE_DIR}/audit-{first:012d}-{last:012d}.jsonl.gz", File(raw))
    return name, digest.hexdigest(), last_hash


def audit_archive(*, older_than_days: int, dry_run: bool) -> ArchiveResult:
    """Move sealed events older than ``older_than_days`` to an archive file behind a signed checkpoint.

    Only the oldest unbroken run of sealed events goes (the chain stays whole from the checkpoint on);
    unsealed events wait for the sealer. A dry run counts what would go and writes nothing.
    """
    if older_than_days < 1:
        raise ValidationError("Archive only events at least one day old.", extra={"fields": {"older_than_days": []}})
    first, last, previous = _range(older_than_days)
    if last < first:
        return ArchiveResult(0, dry_run=dry_run)
    if dry_run:
        count = AuditEvent.objects.filter(sequence__gte=first, sequence__lte=last).count()
        return ArchiveResult(count, first, last, dry_run=True)
    name, sha256, last_hash = _write_archive(first, last, previous)
    key = keys.signing_key()
    with transaction.atomic(using="default"):
        archive = AuditArchive(
            created_at=timezone.now(),
            first_sequence=first,
            last_sequence=last,
            first_prev_hash=previous,
            last_hash=last_hash,
            event_count=last - first + 1,
            file_name=name,
            file_sha256=sha256,
            key_id=key.id,
        )
        archive.signature = keys.sign(key, archive_signed_fields(archive))
        archive.save()
        # The model's queryset refuses deletes (append-only); archival is the one sanctioned removal.
        models.QuerySet(model=AuditEvent).filter(sequence__gte=first, sequence__lte=last).delete()
        audit_record(
            action="audit.archive",
            target=archive,
            after={"events": archive.event_count, "first": first, "last": last, "file": name, "sha256": sha256},
        )
    return ArchiveResult(archive.event_count, first, last, name, sha256)


def _open_archive(file: str) -> tuple[IO[bytes], str]:
    """The archive's bytes from a local path, else from the backups storage; and its storage-style name."""
    path = Path(file)
    if path.is_file():
        return path.open("rb"), path.name
    storage = backups_storage()
    if not storage.exists(file):
        raise NotFound(f"No archive file {file!r}, neither a local file nor in the backups storage.")
    return storage.open(file, "rb"), file


def _checkpoint_for(name: str) -> AuditArchive:
    base = name.rsplit("/", 1)[-1]
    archive = AuditArchive.objects.filter(file_name=name).first() or next(
        (a for a in AuditArchive.objects.filter(file_name__endswith=base) if a.file_name.rsplit("/", 1)[-1] == base),
        None,
    )
    if archive is None:
        raise NotFound(f"The archive {name} has no checkpoint in the audit log: it cannot be trusted.")
    return archive


def _verify_lines(handle: IO[bytes], archive: AuditArchive) -> int:
    walk = ChainWalk(expected=archive.first_sequence, previous=archive.first_prev_hash)
    with gzip.GzipFile(fileobj=handle, mode="rb") as lines:
        for raw in lines:
            line: dict[str, Any] = json.loads(raw)
            fields = {name: line.get(name) for name in LINK_FIELDS}
            if line.get("sequence") != walk.expected:
                raise ChainBroken(walk.expected, f"event #{walk.expected} is missing from the archive")
            if line.get("prev_hash") != walk.previous:
                raise ChainBroken(walk.expected, f"event #{walk.expected} does not link to the event before it")
            if not keys.signature_valid(str(line.get("key_id")), fields, str(line.get("hash"))):
                raise ChainBroken(walk.expected, f"event #{walk.expected} was altered in the archive (HMAC mismatch)")
            walk.previous, walk.expected, walk.checked = str(line["hash"]), walk.expected + 1, walk.checked + 1
    if walk.expected - 1 != archive.last_sequence or walk.previous != archive.last_hash:
        raise ChainBroken(
            walk.expected, f"the archive ends at #{walk.expected - 1}, its checkpoint at #{archive.last_sequence}"
        )
    return walk.checked


def audit_archive_verify(*, file: str) -> ChainReport:
    """Check an archive file against its checkpoint: signature, SHA-256, and every link inside it."""
    handle, name = _open_archive(file)
    with handle:
        archive = _checkpoint_for(name)
        if not archive_signature_valid(archive):
            return ChainReport(
                0, archive.first_sequence, f"the checkpoint of {archive.file_name} is not validly signed"
            )
        digest = hashlib.sha256()
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
        if digest.hexdigest() != archive.file_sha256:
            return ChainReport(
                0, archive.first_sequence, f"{name} does not match its checkpoint's SHA-256: the file was altered"
            )
        handle.seek(0)
        try:
            checked = _verify_lines(handle, archive)
        except ChainBroken as broken:
            return ChainReport(0, broken.at, broken.reason)
        except (OSError, ValueError) as exc:
            return ChainReport(0, archive.first_sequence, f"{name} is not a readable archive ({exc})")
    return ChainReport(checked, first_sequence=archive.first_sequence)
