from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import CommandParser
from django.utils.module_loading import import_string

from ghostcrm.core.commands import ServiceCommand
from ghostcrm.organizations.models import Organization
from ghostcrm.organizations.selectors import IDENTIFIER_FORMS, organization_resolve
from tenants import provisioning, selectors, services
from tenants.api.serializers import OperationSerializer, OrganizationSerializer
from tenants.management.commands._cli import cli_actor

LIFECYCLE = services.LIFECYCLE_ACTIONS


def _time_to_active(organization: Organization) -> str:
    if organization.activated_at is None:
        return "-"
    return f"{(organization.activated_at - organization.created_at).total_seconds():.1f}s"


class Command(ServiceCommand):
    help = (
        "List, inspect and steer client organisations: "
        "list | show | retry | suspend | resume | deprovision | export | restore | reconcile."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        listing = sub.add_parser("list", help="Organisations, newest first.")
        listing.add_argument("--status", choices=Organization.Status.values)
        listing.add_argument("--json", action="store_true")
        show = sub.add_parser("show", help="One organisation with its operations.")
        show.add_argument("organization", help=f"The organisation: {IDENTIFIER_FORMS}.")
        show.add_argument("--json", action="store_true")
        for name in LIFECYCLE:
            action = sub.add_parser(name, help=f"{name.capitalize()} an organisation.")
            action.add_argument("organization", help=f"The organisation: {IDENTIFIER_FORMS}.")
            action.add_argument("--reason", default="")
        export = sub.add_parser("export", help="pg_dump the organisation's schema (to TENANT_BACKUPS_DIR).")
        export.add_argument("organization", help=f"The organisation: {IDENTIFIER_FORMS}.")
        export.add_argument("--output", type=Path, help="File to write instead of the backups folder.")
        restore = sub.add_parser(
            "restore",
            help="Restore SLUG from its backups (docs/operations.md): as --as NEW_SLUG, or over the deleted client; "
            "or restore a schema from an export FILE (the schema must not exist).",
        )
        restore.add_argument("file", metavar="SLUG|FILE")
        restore.add_argument("--backup", type=int, default=None, help="Backup id (default: the newest usable).")
        restore.add_argument("--as", dest="as_slug", default="", metavar="NEW_SLUG", help="Restore as a new client.")
        restore.add_argument("--to", dest="to_server", default="", metavar="SERVER", help="Tenant server.")
        restore.add_argument("--suspended", action="store_true", help="Undelete as suspended, not active.")
        reconcile = sub.add_parser("reconcile", help="Run the reconciler once (re-enqueue stuck, purge expired).")
        reconcile.add_argument("--json", action="store_true")

    def run(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        actor = cli_actor(f"tenants {action}")
        if action == "list":
            self._list(status=options["status"], as_json=options["json"])
        elif action == "show":
            self._show(identifier=options["organization"], as_json=options["json"])
        elif action in LIFECYCLE:
            organization = organization_resolve(identifier=options["organization"])
            reason = options["reason"] or f"{action} from the command line"
            organization = LIFECYCLE[action](organization_id=organization.pk, actor=actor, reason=reason)
            organization.refresh_from_db()
            self.stdout.write(f"{organization.name} ({organization.slug}) is {organization.status}.")
        elif action == "export":
            organization = organization_resolve(identifier=options["organization"])
            path = provisioning.organization_export(
                organization_id=organization.pk, actor=actor, destination=options["output"]
            )
            self.stdout.write(f"Schema {organization.schema_name} exported to {path} ({path.stat().st_size} bytes).")
        elif action == "restore" and ("/" in options["file"] or "." in options["file"]):  # a slug has neither
            schema = provisioning.schema_restore(path=Path(options["file"]), actor=actor)
            self.stdout.write(f"Schema {schema} restored from {options['file']}.")
        elif action == "restore":
            # The operations app sits above tenants: reached by name, so tenants imports nothing of it.
            result = import_string("operations.services.restore.organization_restore")(
                slug=options["file"],
                backup_id=options["backup"],
                as_slug=options["as_slug"],
                to_server=options["to_server"],
                suspended=options["suspended"],
                actor=actor,
            )
            how = "undeleted" if result.undeleted else "restored as a new client"
            self.stdout.write(
                f"{result.organization.slug} {how} from backup #{result.backup.pk} "
                f"(schema {result.organization.schema_name}, {result.organization.status}, {result.duration_ms} ms)."
            )
        elif action == "reconcile":
            result = provisioning.organizations_reconcile()
            if options["json"]:
                self.write_json(result)
            else:
                self.stdout.write(", ".join(f"{key}: {value}" for key, value in result.items()))

    def _list(self, *, status: str | None, as_json: bool) -> None:
        organizations = list(selectors.organization_list(status=status))
        if as_json:
            self.write_json([dict(OrganizationSerializer(org).data) for org in organizations])
            return
        if not organizations:
            self.stdout.write("No organisations" + (f" with status {status}." if status else "."))
            return
        header = f"{'slug':<32} {'status':<15} {'plan':<12} {'created (UTC)':<17} {'to active':>9}  last error"
        self.stdout.write(header)
        live = selectors.live_plan_names(organization_ids=[org.pk for org in organizations])
        for org in organizations:
            plan = live.get(org.pk) or org.plan_code or "-"
            self.stdout.write(
                f"{org.slug:<32} {org.status:<15} {plan:<12} {org.created_at:%Y-%m-%d %H:%M} "
                f"{_time_to_active(org):>9}  {org.last_error[:60]}"
            )
        self.stdout.write(f"{len(organizations)} organisation(s).")

    def _show(self, *, identifier: str, as_json: bool) -> None:
        organization = organization_resolve(identifier=identifier)
        operations = list(selectors.organization_operations(organization=organization))
        if as_json:
            data = dict(OrganizationSerializer(organization).data)
            data["operations"] = [dict(OperationSerializer(op).data) for op in operations]
            self.write_json(data)
            return
        for label, value in (
            ("name", organization.name),
            ("id", organization.pk),
            ("slug", organization.slug),
            ("schema", organization.schema_name),
            ("admin e-mail", organization.admin_email),
            ("plan", organization.plan_code or "-"),
            ("status", organization.status),
            ("last error", organization.last_error or "-"),
            ("created", organization.created_at),
            ("time to active", _time_to_active(organization)),
            ("export", organization.export_path or "-"),
            ("purge after", organization.purge_after or "-"),
        ):
            self.stdout.write(f"{label:>15}: {value}")
        self.stdout.write("operations:")
        for op in operations:
            duration = "-" if op.duration_ms is None else f"{op.duration_ms} ms"
            self.stdout.write(
                f"  {op.started_at:%Y-%m-%d %H:%M:%S} {op.step:<12} #{op.attempt} {op.outcome:<8} {duration:>9}  "
                f"{op.error or op.message}".rstrip()
            )
