"""``tenant_servers``: the registry of tenant database servers (add, list, open, drain, close).

Exit status: 0 done; 1 a server does not answer or fails a check (``add``), or some server is unreachable
(``list``, after printing every server); 2 bad input (an invalid name or URL, an unknown or duplicate server).
"""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.template.defaultfilters import filesizeformat

from ghostcrm.core.commands import ServiceCommand
from ghostcrm.core.errors import ApplicationError, Conflict, NotFound, ValidationError
from tenants.fleet import selectors, services
from tenants.fleet.selectors import ServerStatus
from tenants.management.commands._cli import cli_actor

BAD_INPUT = (ValidationError, NotFound, Conflict)
STATES = {"open": "open", "drain": "draining", "close": "closed"}


def _status_line(status: ServerStatus) -> str:
    head = f"{status.name:<16} {status.state:<9} clients {status.clients}/{status.capacity}"
    if not status.reachable:
        return f"{head}  UNREACHABLE: {status.error}"
    size = filesizeformat(status.size_bytes or 0)
    return (
        f"{head}  size {size}  connections {status.connections_in_use}/{status.max_connections}  "
        f"PostgreSQL {status.version}  wal_level {status.wal_level}  {status.url}"
    )


class Command(ServiceCommand):
    help = "The registry of tenant database servers: add | list | open | drain | close."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        add = sub.add_parser("add", help="Check a server, then register it.")
        add.add_argument("name", help="Lowercase letters, digits and hyphens.")
        add.add_argument("--url", required=True, help="postgres://user:password@host:5432/database")
        add.add_argument("--capacity", type=int, help="The most clients it takes (default 1000).")
        add.add_argument("--notes", default="")
        listing = sub.add_parser("list", help="Every server with its live figures (probed in parallel).")
        listing.add_argument("--json", action="store_true")
        for verb in STATES:
            action = sub.add_parser(verb, help=f"{verb.capitalize()} a server.")
            action.add_argument("name")
            action.add_argument("--reason", default="")

    def handle(self, *args: Any, **options: Any) -> str | None:
        try:
            self.run(*args, **options)
        except BAD_INPUT as exc:
            raise CommandError(exc.message, returncode=2) from exc
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        return None

    def run(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "add":
            self._add(options)
        elif action == "list":
            self._list(as_json=options["json"])
        else:
            server, changed = services.server_state_set(
                name=options["name"],
                state=STATES[action],
                actor=cli_actor(f"tenant_servers {action}"),
                reason=options["reason"] or f"{action} from the command line",
            )
            verb = "is now" if changed else "was already"
            self.stdout.write(f"Server {server.name} {verb} {server.state}.")

    def _add(self, options: dict[str, Any]) -> None:
        server, check = services.server_add(
            name=options["name"],
            url=options["url"],
            capacity=options["capacity"],
            notes=options["notes"],
            actor=cli_actor("tenant_servers add"),
        )
        if check.warning:
            self.stderr.write(f"Warning: {check.warning}")
        self.stdout.write(
            f"Server {server.name} registered ({server.url}, PostgreSQL {check.probe.version}, "
            f"capacity {server.capacity})."
        )

    def _list(self, *, as_json: bool) -> None:
        statuses = selectors.server_statuses()
        if as_json:
            self.write_json([status.as_dict() for status in statuses])
        elif not statuses:
            self.stdout.write("No tenant database servers are registered; `python manage.py migrate` adds primary.")
        else:
            for status in statuses:
                self.stdout.write(_status_line(status))
        if any(not status.reachable for status in statuses):
            sys.exit(1)
