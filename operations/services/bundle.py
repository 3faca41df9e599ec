"""A backup bundle: a JSON manifest and a payload file (a pg_dump archive or a SQLite copy), encrypted.

Plain layout before encryption: ``GCB1`` | manifest length (8 bytes) | manifest JSON | payload. It is
encrypted segment by segment (``operations.crypto``) straight into a temporary file, hashed, then handed to
the ``backups`` storage as a file, which S3 uploads in parts: nothing holds the dump in memory.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from django.core.files import File

from operations.crypto import BackupCorrupted, decrypt_stream, encrypt_stream
from operations.storage import backups_storage

MAGIC = b"GCB1"


class _Chain(io.RawIOBase):
    """Reads several binary streams one after the other."""

    def __init__(self, *parts: BinaryIO) -> None:
        self.parts = list(parts)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while self.parts:
            data = self.parts[0].read(len(buffer))
            if data:
                buffer[: len(data)] = data
                return len(data)
            self.parts.pop(0)
        return 0


@dataclass
class Stored:
    name: str
    size: int
    sha256: str
    key_id: str


def store(*, manifest: dict[str, Any], payload: Path, name: str, workdir: Path) -> Stored:
    """Encrypt manifest + payload into the ``backups`` storage under ``name``."""
    head = json.dumps(manifest, sort_keys=True, default=str).encode()
    encrypted = workdir / "bundle.gcbk"
    with payload.open("rb") as body, encrypted.open("wb") as target:
        source = io.BufferedReader(_Chain(io.BytesIO(MAGIC + len(head).to_bytes(8, "big") + head), body))
        key_id = encrypt_stream(source, target)  # type: ignore[arg-type]
    digest = hashlib.sha256()
    with encrypted.open("rb") as handle:
        for block in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(block)
    with encrypted.open("rb") as handle:
        saved = backups_storage().save(name, File(handle, name=Path(name).name))
    return Stored(name=saved, size=encrypted.stat().st_size, sha256=digest.hexdigest(), key_id=key_id)


def fetch(*, name: str, workdir: Path, expected_sha256: str = "") -> tuple[dict[str, Any], Path]:
    """Download, check and decrypt a stored bundle; returns its manifest and the payload's path."""
    encrypted = workdir / "download.gcbk"
    with backups_storage().open(name, "rb") as source, encrypted.open("wb") as target:
        shutil.copyfileobj(source, target, 1024 * 1024)
    if expected_sha256:
        digest = hashlib.sha256()
        with encrypted.open("rb") as handle:
            for block in iter(lambda: handle.read(1024 * 1024), b""):
                digest.update(block)
        if digest.hexdigest() != expected_sha256:
            raise BackupCorrupted(f"Backup file {name} does not match its recorded SHA-256: it was changed.")
    plain = workdir / "bundle.plain"
    with encrypted.open("rb") as source, plain.open("wb") as target:
        decrypt_stream(source, target)
    encrypted.unlink()
    payload = workdir / "payload"
    with plain.open("rb") as source:
        if source.read(4) != MAGIC:
            raise BackupCorrupted(f"Backup file {name} holds no GhostCRM bundle.")
        length = int.from_bytes(source.read(8), "big")
        manifest = json.loads(source.read(length))
        with payload.open("wb") as target:
            shutil.copyfileobj(source, target, 1024 * 1024)
    plain.unlink()
    return manifest, payload


def workdir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="ghostcrm-backup-")
