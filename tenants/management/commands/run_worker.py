from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandParser

from ghostcrm.core.commands import ServiceCommand


class Command(ServiceCommand):
    help = (
        "Run an RQ worker on the provisioning, default and billing queues (with RQ's scheduler for retries) and, "
        "unless --no-cron, the cron scheduler for settings.PERIODIC_JOBS (the reconciler, retention purge, ...)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("queues", nargs="*", default=["provisioning", "default", "billing"])
        parser.add_argument("--no-cron", action="store_true", help="Do not start the periodic-job scheduler here.")
        parser.add_argument("--burst", action="store_true", help="Exit once the queues are empty.")

    def run(self, *args: Any, **options: Any) -> None:
        cron: subprocess.Popen[bytes] | None = None
        if not options["no_cron"] and not options["burst"]:
            manage = Path(settings.BASE_DIR) / "manage.py"
            # RQ's cron scheduler installs its own signal handlers, so it runs as our child process.
            cron = subprocess.Popen([sys.executable, str(manage), "rqcron", "tenants.periodic"])  # noqa: S603
            self.stdout.write(f"Cron scheduler started (pid {cron.pid}) for {len(settings.PERIODIC_JOBS)} job(s).")
        try:
            call_command("rqworker", *options["queues"], with_scheduler=True, burst=options["burst"])
        finally:
            if cron is not None and cron.poll() is None:
                cron.terminate()
                try:
                    cron.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    cron.kill()
