"""Streaming authenticated encryption of backup files with the project's key ring.

A backup can be larger than memory, so it is encrypted in segments (the STREAM construction used by age
and Tink): AES-256-GCM per 1 MiB segment, the nonce made of a random prefix, the segment counter and a
last-segment flag, and the file header as associated data. Reordering, truncating, extending or flipping
any byte fails authentication. The AES key is derived (HKDF-SHA256, per-file random salt) from a key of
``FIELD_ENCRYPTION_KEYS``; the header names that key by its fingerprint, so after a rotation (a new key in
front, the old one kept behind it) old backups still decrypt, and a missing key is named in the error.

File layout: ``GCBK1`` | key id (8 ASCII) | salt (16) | nonce prefix (7) | segments.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterator
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ghostcrm.core.errors import ValidationError
from ghostcrm.core.fields import EncryptionKeyError, configured_keys, key_fingerprint

MAGIC = b"GCBK1"
SEGMENT = 1024 * 1024
TAG = 16
HEADER_LEN = len(MAGIC) + 8 + 16 + 7


class BackupCorrupted(ValidationError):
    """The file is not an intact backup: authentication failed, it was cut short, or it is not ours."""

    code = "backup_corrupted"


def _derive(key: bytes, salt: bytes) -> AESGCM:
    raw = base64.urlsafe_b64decode(key)
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=b"ghostcrm-backup-v1")
    return AESGCM(hkdf.derive(raw))


def current_key_id() -> str:
    return key_fingerprint(configured_keys()[0])


def _key_for(key_id: str) -> bytes:
    for key in configured_keys():
        if key_fingerprint(key) == key_id:
            return key
    raise EncryptionKeyError(
        f"The backup was encrypted with key {key_id}, which is not in FIELD_ENCRYPTION_KEYS; put that key back "
        "(after the newest one) to read it."
    )


def _nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    return prefix + counter.to_bytes(4, "big") + (b"\x01" if last else b"\x00")


def _chunks(source: BinaryIO, size: int) -> Iterator[bytes]:
    while True:
        block = source.read(size)
        if not block:
            return
        yield block


def encrypt_stream(source: BinaryIO, target: BinaryIO) -> str:
    """Encrypt ``source`` into ``target`` segment by segment with the newest key; returns the key id."""
    key = configured_keys()[0]
    key_id = key_fingerprint(key)
    salt, prefix = os.urandom(16), os.urandom(7)
    header = MAGIC + key_id.encode("ascii") + salt + prefix
    aead = _derive(key, salt)
    target.write(header)
    counter = 0
    pending = source.read(SEGMENT)
    while True:
        following = source.read(SEGMENT)
        last = not following
        target.write(aead.encrypt(_nonce(prefix, counter, last), pending, header))
        if last:
            return key_id
        pending, counter = following, counter + 1


def read_key_id(source: BinaryIO) -> str:
    header = source.read(HEADER_LEN)
    if len(header) != HEADER_LEN or not header.startswith(MAGIC):
        raise BackupCorrupted("This is not a GhostCRM backup file (its header is missing or unknown).")
    return header[len(MAGIC) : len(MAGIC) + 8].decode("ascii", "replace")


def decrypt_stream(source: BinaryIO, target: BinaryIO) -> str:
    """Decrypt a file written by ``encrypt_stream``; ``BackupCorrupted`` on any change. Returns the key id."""
    header = source.read(HEADER_LEN)
    if len(header) != HEADER_LEN or not header.startswith(MAGIC):
        raise BackupCorrupted("This is not a GhostCRM backup file (its header is missing or unknown).")
    key_id = header[len(MAGIC) : len(MAGIC) + 8].decode("ascii", "replace")
    salt = header[len(MAGIC) + 8 : len(MAGIC) + 24]
    prefix = header[len(MAGIC) + 24 :]
    aead = _derive(_key_for(key_id), salt)
    counter = 0
    pending = source.read(SEGMENT + TAG)
    while True:
        following = source.read(SEGMENT + TAG)
        last = not following
        try:
            target.write(aead.decrypt(_nonce(prefix, counter, last), pending, header))
        except InvalidTag:
            raise BackupCorrupted(
                f"The backup fails authentication at segment {counter + 1}: it was altered or cut short."
            ) from None
        if last:
            return key_id
        pending, counter = following, counter + 1


def sha256_of(source: BinaryIO) -> str:
    digest = hashlib.sha256()
    for block in _chunks(source, SEGMENT):
        digest.update(block)
    return digest.hexdigest()
