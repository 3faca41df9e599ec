from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from ghostcrm.audit.services import Actor
from ghostcrm.core.commands import ServiceCommand
from operations.services import retention

ACTOR = Actor.system("manage.py retention")


class Command(ServiceCommand):
    help = "Apply the retention policy: run [--dry-run] [--json] | policy (docs/operations.md)."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        run = sub.add_parser("run", help="Remove (or, with --dry-run, count) what each rule no longer keeps.")
        run.add_argument("--dry-run", action="store_true")
        run.add_argument("--json", action="store_true")
        sub.add_parser("policy", help="The rules, one line each.")

    def run(self, *args: Any, **options: Any) -> None:
        if options["action"] == "policy":
            for line in retention.policy():
                self.stdout.write(f"{line['rule']:<22} {line['removes']}")
            return
        report = retention.retention_run(
            dry_run=options["dry_run"], actor=ACTOR, progress=None if options["json"] else self.stdout.write
        )
        if options["json"]:
            self.write_json(report.as_dict())
        else:
            total = sum(v or 0 for v in report.run.counts.values())
            verb = "would remove" if report.run.dry_run else "removed"
            self.stdout.write(f"retention run #{report.run.pk}: {verb} {total} row(s) in all")
            for archive in report.run.archives:
                self.stdout.write(
                    f"archived {archive['rows']} row(s) to {archive['file']} (sha256 {archive['sha256']})"
                )
        if report.run.error:
            raise CommandError(f"Retention run #{report.run.pk} had errors: {report.run.error}")
