"""Run the billing cycle now: usage readings, renewals, dunning (what the scheduled RQ jobs do)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import CommandParser
from django.utils import timezone

from billing import services
from billing.management.commands._progress import progress_reporter
from ghostcrm.audit.services import Actor
from ghostcrm.core.commands import ServiceCommand
from ghostcrm.core.errors import ValidationError

STEPS = ("usage", "renewals", "dunning")


class Command(ServiceCommand):
    help = "Take usage readings, renew elapsed subscription periods and advance dunning, in that order."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--only", action="append", choices=STEPS, default=[], help="Run only this step.")
        parser.add_argument(
            "--at", default="", help="Act as if it were this UTC moment (ISO 8601), e.g. to catch up after an outage."
        )

    def run(self, *args: Any, **options: Any) -> None:
        at = timezone.now()
        if options["at"]:
            try:
                at = dt.datetime.fromisoformat(options["at"])
            except ValueError:
                raise ValidationError(f"--at {options['at']!r} is not an ISO 8601 date and time.") from None
            if at.tzinfo is None:
                at = at.replace(tzinfo=dt.UTC)
        actor = Actor.system("billing_run_cycle")
        failed = 0
        for step in options["only"] or STEPS:
            if step == "usage":
                tick, close = progress_reporter(self.stdout, total=len(services.usage_due()), label="usage")
                summary = services.usage_readings_run(actor=actor, at=at, progress=tick)
            elif step == "renewals":
                tick, close = progress_reporter(self.stdout, total=len(services.renewals_due(at=at)), label="renewals")
                summary = services.renewals_run(actor=actor, at=at, progress=tick)
            else:
                tick, close = progress_reporter(self.stdout, total=len(services.dunning_due(at=at)), label="dunning")
                summary = services.dunning_run(actor=actor, at=at, progress=tick)
            close()
            failed += summary.failed
            self.stdout.write(f"{step}: {summary}.")
            for error in summary.errors:
                self.stderr.write(f"  {error}")
        if failed:
            raise ValidationError(f"{failed} item(s) failed; see the lines above.")
