"""``migrate`` for both databases.

django-tenants replaces Django's ``migrate`` with ``migrate_schemas``, which cannot migrate a main database
that is not PostgreSQL. This command (its app comes first in INSTALLED_APPS) runs Django's own migrate on
the main database and then on the tenant database's public schema; the router decides which tables go
where. ``--database`` limits it to one; ``--check`` exits 1 when either database is behind.
"""

from __future__ import annotations

import sys
from typing import Any

from django.conf import settings
from django.core.management.base import CommandParser
from django.core.management.commands.migrate import Command as DjangoMigrateCommand
from django.db import DEFAULT_DB_ALIAS

from ghostcrm.core.signals import databases_migrated


class Command(DjangoMigrateCommand):
    help = "Update the main database and the tenant registry database (both unless --database is given)."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.set_defaults(database=None)

    @staticmethod
    def _aliases(options: dict[str, Any]) -> list[str]:
        return [options["database"]] if options["database"] else [DEFAULT_DB_ALIAS, settings.TENANT_DB_ALIAS]

    def get_check_kwargs(self, options: dict[str, Any]) -> Any:
        return {
            **super().get_check_kwargs({**options, "database": DEFAULT_DB_ALIAS}),
            "databases": self._aliases(options),
        }

    def handle(self, *args: Any, **options: Any) -> None:
        aliases = self._aliases(options)
        behind = []
        for alias in aliases:
            if options["verbosity"] >= 1 and len(aliases) > 1 and not options["check_unapplied"]:
                self.stdout.write(self.style.MIGRATE_HEADING(f"Database {alias!r}:"))
            try:
                super().handle(*args, **{**options, "database": alias})
            except SystemExit as exc:  # Django's --check exits 1 as soon as one database is behind
                if not options["check_unapplied"] or not exc.code:
                    raise
                behind.append(alias)
        if behind:
            self.stderr.write(f"Unapplied migrations on: {', '.join(behind)}. Run: python manage.py migrate")
            sys.exit(1)
        # A whole run (both databases, every app) lets other apps record what it implies (tenants.fleet: the
        # primary server). Test-database creation migrates one alias at a time, so it sends nothing.
        if not (options["database"] or options["app_label"] or options["check_unapplied"] or options["plan"]):
            for _receiver, sentence in databases_migrated.send(sender=type(self), aliases=aliases):
                if sentence and options["verbosity"] >= 1:
                    self.stdout.write(str(sentence))
