"""``export_tsql``: the main database's migrations as numbered T-SQL scripts for sqlcmd (no server needed)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser

from ghostcrm.core.commands import ServiceCommand
from ghostcrm.mssql import export


class Command(ServiceCommand):
    help = (
        "Write migrations_sql/main-database/NNN_<app>_<migration>.sql from the Django migrations, with "
        "mssql-django's schema editor, offline. --check exits 1 when the committed scripts are out of date."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--output",
            type=Path,
            default=None,
            help="Folder to write to (default: migrations_sql/main-database). Numbers always come from that folder.",
        )
        parser.add_argument("--check", action="store_true", help="Write nothing; exit 1 if any script differs.")
        parser.add_argument(
            "--renumber",
            action="store_true",
            help="Number every script afresh in dependency order (only before any script was applied to a server).",
        )

    def run(self, *args: Any, **options: Any) -> None:
        canonical = Path(settings.MAIN_DATABASE_TSQL_DIR)
        output: Path = options["output"] or canonical
        try:
            files = export.generate(numbering_from=canonical, renumber=options["renumber"])
        except export.ExportError as exc:
            raise CommandError(str(exc)) from exc
        if options["check"]:
            problems = export.differences(files, output)
            if problems:
                shown = "; ".join(problems[:8]) + (f"; and {len(problems) - 8} more" if len(problems) > 8 else "")
                self.stderr.write(
                    f"The T-SQL scripts in {output} are out of date ({len(problems)} files: {shown}). "
                    "Run: python manage.py export_tsql"
                )
                sys.exit(1)
            self.stdout.write(self.style.SUCCESS(f"{len(files)} T-SQL scripts in {output} are up to date."))
            return
        written, removed = export.write(files, output)
        if options["verbosity"] >= 1:
            for name in written:
                self.stdout.write(f"wrote {output / name}")
            for name in removed:
                self.stdout.write(f"removed {output / name}")
        self.stdout.write(
            self.style.SUCCESS(
                f"{len(files)} T-SQL scripts in {output}: {len(written)} written, "
                f"{len(files) - len(written)} unchanged, {len(removed)} removed."
            )
        )
