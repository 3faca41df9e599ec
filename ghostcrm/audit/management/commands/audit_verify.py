from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import CommandParser

from ghostcrm.audit.archives import audit_archive_verify
from ghostcrm.audit.jobs import audit_seal_job
from ghostcrm.audit.models import AuditEvent
from ghostcrm.audit.selectors import ChainReport, audit_chain_verify, audit_unsealed_overdue, seal_max_lag
from ghostcrm.core.commands import ServiceCommand
from ghostcrm.core.progress import Progress


class Command(ServiceCommand):
    help = (
        "Verify the audit log's keyed chain from the newest archive checkpoint to the newest published checkpoint "
        "and the head; exit 1 naming the first broken link, or on an alarm (no checkpoint published, events left "
        "unsealed too long). With --archive FILE, verify one archive file against its checkpoint instead."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--archive", metavar="FILE", help="An archive file (local path or backups storage name).")
        parser.add_argument("--no-seal", action="store_true", help="Do not seal pending events first (read only).")

    def run(self, *args: Any, **options: Any) -> None:
        if options["archive"]:
            self._finish(audit_archive_verify(file=options["archive"]), what=f"Archive {options['archive']}")
            return
        # Counted before sealing: sealing them now would hide that the sealing job is not running.
        overdue = audit_unsealed_overdue()
        if not options["no_seal"]:
            audit_seal_job()
        total = AuditEvent.objects.filter(sequence__isnull=False).count()
        with Progress(
            self.stderr, total=total, label="audit_verify", unit="event", enabled=options["verbosity"] >= 2, every=10000
        ) as progress:
            report = audit_chain_verify(progress=progress.advance)
        alarms = list(report.alarms)
        if overdue and not any("unsealed" in alarm for alarm in alarms):
            alarms.append(
                f"{overdue} event(s) were unsealed for longer than {int(seal_max_lag().total_seconds())} s before "
                "this check sealed them: is the audit sealing job running?"
            )
        self._finish(report, what="Audit chain", alarms=alarms)

    def _finish(self, report: ChainReport, *, what: str, alarms: list[str] | None = None) -> None:
        if not report.ok:
            self.stderr.write(
                f"{what} BROKEN at event #{report.broken_at}: {report.reason}. "
                f"{report.checked} events before it verified."
            )
            sys.exit(1)
        start = f" from #{report.first_sequence} (earlier events are archived)" if report.first_sequence > 1 else ""
        checkpoint = (
            f"; matches the checkpoint of #{report.checkpoint.sequence} published at {report.checkpoint.time}"
            if report.checkpoint is not None
            else ""
        )
        self.stdout.write(self.style.SUCCESS(f"{what} intact: {report.checked} events verified{start}{checkpoint}."))
        for alarm in alarms or []:
            self.stderr.write(f"ALARM: {alarm}")
        if alarms:
            sys.exit(1)
