"""Run the billing cycle now: usage readings, renewals, dunning (what the scheduled RQ jobs do)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import CommandParser
from django.utils import timezone

from billing import services
from ghostcrm.audit.services import Actor
from ghostcrm.core.commands import ServiceCommand
from ghostcrm.core.errors import ValidationError
from ghostcrm.core.progress import Progress

STEPS = ("usage", "renewals", "dunning")
RUNS = {"usage": services.usage_readings_run, "renewals": services.renewals_run, "dunning": services.dunning_run}


def _due(step: str, at: dt.datetime) -> int:
    if step == "usage":
        return len(services.usage_due())
    return len((services.renewals_due if step == "renewals" else services.dunning_due)(at=at))


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
            with Progress(self.stdout, total=_due(step, at), label=step, summary=False) as progress:
                summary = RUNS[step](actor=actor, at=at, progress=lambda item: progress.advance(item=item))
            failed += summary.failed
            self.stdout.write(f"{step}: {summary}.")
            for error in summary.errors:
                self.stderr.write(f"  {error}")
        if failed:
            raise ValidationError(f"{failed} item(s) failed; see the lines above.")
