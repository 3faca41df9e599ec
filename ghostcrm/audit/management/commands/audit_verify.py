from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm

from ghostcrm.audit.models import AuditEvent
from ghostcrm.audit.selectors import audit_chain_verify
from ghostcrm.core.commands import ServiceCommand


class Command(ServiceCommand):
    help = "Verify the audit log's hash chain; exit 1 and name the first broken link if it does not hold."

    def run(self, *args: Any, **options: Any) -> None:
        total = AuditEvent.objects.count()
        with tqdm(total=total, unit="event", disable=options["verbosity"] < 1 or not sys.stderr.isatty()) as bar:

            def advance(count: int) -> None:
                bar.update(count)

            report = audit_chain_verify(progress=advance)
        if report.ok:
            self.stdout.write(self.style.SUCCESS(f"Audit chain intact: {report.checked} events verified."))
            return
        self.stderr.write(
            f"Audit chain BROKEN at event #{report.broken_at}: {report.reason}. "
            f"{report.checked} events before it verified."
        )
        sys.exit(1)
