from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from ghostcrm.audit.services import Actor
from ghostcrm.core.commands import ServiceCommand
from ghostcrm.core.system_settings import setting_value
from operations import selectors
from operations.models import Outcome
from operations.services import backups, drills

ACTOR = Actor.system("manage.py backups")


class Command(ServiceCommand):
    help = "Client and main-database backups: run | list | main | drill | prune (docs/operations.md)."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        run = sub.add_parser("run", help="Back up the named clients now, or every client with --all.")
        run.add_argument("slugs", nargs="*", metavar="SLUG")
        run.add_argument("--all", action="store_true")
        run.add_argument("--json", action="store_true")
        listing = sub.add_parser("list", help="Backups, newest first.")
        listing.add_argument("slug", nargs="?", default="")
        listing.add_argument("--json", action="store_true")
        main = sub.add_parser("main", help="Back up the main database now.")
        main.add_argument("--json", action="store_true")
        drill = sub.add_parser("drill", help="Restore recent backups into scratch schemas and compare them.")
        drill.add_argument("--sample", type=int, default=None)
        drill.add_argument("--json", action="store_true")
        prune = sub.add_parser("prune", help="Remove backup files the GFS policy no longer keeps.")
        prune.add_argument("--dry-run", action="store_true")
        prune.add_argument("--json", action="store_true")

    def run(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        getattr(self, f"_{action}")(**options)

    def _progress(self, options: dict[str, Any]) -> Any:
        return None if options["json"] else self.stdout.write

    def _run(self, **options: Any) -> None:
        if not options["slugs"] and not options["all"]:
            raise CommandError("Name the clients to back up (SLUG ...), or give --all.")
        report = backups.backups_run(slugs=options["slugs"], actor=ACTOR, progress=self._progress(options))
        if options["json"]:
            self.write_json(report.as_dict())
        else:
            summary = report.as_dict()["summary"]
            self.stdout.write(f"{summary['succeeded']} succeeded, {summary['failed']} failed")
        if report.failures:
            raise CommandError(
                f"{len(report.failures)} backup(s) failed: " + ", ".join(f["slug"] for f in report.failures)
            )

    def _list(self, **options: Any) -> None:
        rows = [backups.backup_as_dict(b) for b in selectors.backups_list(slug=options["slug"])[:500]]
        if options["json"]:
            self.write_json(rows)
            return
        for row in rows:
            size = f"{row['size_bytes']} B" if row["size_bytes"] is not None else "-"
            pruned = " (pruned)" if row["pruned_at"] else ""
            self.stdout.write(
                f"#{row['id']:<6} {row['started_at']:%Y-%m-%d %H:%M} {row['kind']:<6} {row['slug'] or 'main':<24} "
                f"{row['outcome']:<8} {size:>12} key {row['key_id'] or '-'}{pruned}"
            )
        self.stdout.write(f"{len(rows)} backup(s)")

    def _main(self, **options: Any) -> None:
        backup = backups.main_backup(actor=ACTOR)
        if options["json"]:
            self.write_json(backups.backup_as_dict(backup))
        else:
            self.stdout.write(
                f"main database ({backup.engine}) backed up: {backup.storage_name}, {backup.size_bytes} B"
            )

    def _drill(self, **options: Any) -> None:
        sample = options["sample"] or int(setting_value("backups.drill_sample"))
        drill = drills.drill_run(sample=sample, actor=ACTOR, progress=self._progress(options))
        if options["json"]:
            self.write_json(
                {
                    "id": drill.pk,
                    "outcome": drill.outcome,
                    "checked": drill.checked,
                    "failed": drill.failed,
                    "results": drill.results,
                    "error": drill.error,
                }
            )
        else:
            self.stdout.write(f"drill #{drill.pk}: {drill.checked} checked, {drill.failed} failed ({drill.outcome})")
        if drill.outcome != Outcome.SUCCESS:
            raise CommandError(f"Restore drill #{drill.pk} failed. {drill.error}".strip())

    def _prune(self, **options: Any) -> None:
        result = backups.backups_prune(dry_run=options["dry_run"], actor=ACTOR)
        if options["json"]:
            self.write_json(result)
        else:
            verb = "would prune" if result["dry_run"] else "pruned"
            self.stdout.write(f"{verb} {len(result['pruned'])} backup file(s): {result['pruned']}")
