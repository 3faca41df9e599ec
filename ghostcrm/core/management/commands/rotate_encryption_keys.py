from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from ghostcrm.audit.services import Actor
from ghostcrm.core.commands import ServiceCommand
from ghostcrm.core.fields import describe_keys
from ghostcrm.core.progress import Progress
from ghostcrm.core.services import encrypted_fields, encrypted_values_count, encryption_keys_rotate


class Command(ServiceCommand):
    help = (
        "Re-encrypt every encrypted value of every model with the newest key in FIELD_ENCRYPTION_KEYS. "
        "Run it after putting a new key first; remove old keys only once it succeeds."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=500, help="Rows per transaction (default 500).")

    def run(self, *args: Any, **options: Any) -> None:
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1.")
        fields = encrypted_fields()
        total = encrypted_values_count()
        verbose = options["verbosity"] >= 1
        if verbose:
            self.stdout.write(
                f"Re-encrypting {total} value(s) in {len(fields)} encrypted field(s) "
                f"({', '.join(f'{m._meta.label}.{f.name}' for m, f in fields) or 'none'}) with {describe_keys()}."
            )
        with Progress(self.stderr, total=total, label="rotate_encryption_keys", unit="value", enabled=verbose) as bar:
            report = encryption_keys_rotate(
                actor=Actor.system("manage.py rotate_encryption_keys"),
                batch_size=options["batch_size"],
                progress=bar.advance,
            )
        for outcome in report.fields:
            if verbose:
                self.stdout.write(
                    f"  {outcome.label}: {outcome.rotated} re-encrypted, {outcome.current} already current, "
                    f"{len(outcome.failed)} undecryptable"
                )
        if not report.ok:
            named = "; ".join(f"{f.label} pk {', '.join(f.failed[:10])}" for f in report.fields if f.failed)
            raise CommandError(
                f"{report.failed} value(s) could not be decrypted with {describe_keys()} ({named}). Add the key "
                "they were encrypted with to FIELD_ENCRYPTION_KEYS (after the newest) and run this command again; "
                "the other values were re-encrypted."
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"Done in {report.duration_ms} ms: {report.rotated} re-encrypted, {report.current} already current "
                f"with key {report.key_fingerprint}. Keys after the first in FIELD_ENCRYPTION_KEYS may now be removed."
            )
        )
