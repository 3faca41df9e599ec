from __future__ import annotations

import sys
import time
from typing import Any

from django.core.management.base import CommandParser

from ghostcrm.core.commands import ServiceCommand
from ghostcrm.organizations.models import Organization
from ghostcrm.organizations.selectors import IDENTIFIER_FORMS, organization_resolve
from tenants import services
from tenants.management.commands._cli import cli_actor
from tenants.models import Operation

Status = Organization.Status


class Command(ServiceCommand):
    help = (
        "Request a new client organisation; provisioning runs on the worker (python manage.py run_worker). "
        "With --wait, follow it: exit 0 when active, 1 when failed or timed out. "
        "--follow ORGANISATION follows one requested earlier (its slug, schema name or id)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", default="", help='The client\'s name, e.g. "ACME Corp".')
        parser.add_argument(
            "--admin-email", default="", help="The client's first Tenant CRM admin, who gets an invitation."
        )
        parser.add_argument("--follow", default="", metavar="ORGANISATION", help=f"Follow {IDENTIFIER_FORMS}.")
        parser.add_argument("--plan", default="", help="Code of an active billing plan (default: no plan).")
        parser.add_argument("--wait", action="store_true", help="Follow provisioning until active or failed.")
        parser.add_argument("--timeout", type=int, default=900, help="Seconds --wait waits (default 900).")

    def run(self, *args: Any, **options: Any) -> None:
        if options["follow"]:
            self._follow(organization_resolve(identifier=options["follow"]), timeout=options["timeout"])
            return
        organization = services.organization_request(
            name=options["name"],
            admin_email=options["admin_email"],
            plan_code=options["plan"],
            actor=cli_actor("provision_client"),
        )
        self.stdout.write(
            f"Organisation {organization.name} ({organization.slug}, id {organization.pk}) is {organization.status}; "
            f"schema {organization.schema_name}."
        )
        if not options["wait"]:
            return
        self._follow(organization, timeout=options["timeout"])

    def _follow(self, organization: Organization, *, timeout: int) -> None:
        self.stdout.write("Waiting for a worker to provision it (python manage.py run_worker)...")
        deadline = time.monotonic() + timeout
        shown: set[int] = set()
        while True:
            organization.refresh_from_db()
            finished = Operation.objects.filter(organization=organization).exclude(outcome=Operation.Outcome.RUNNING)
            for operation in finished.order_by("started_at", "id"):
                if operation.pk in shown:
                    continue
                shown.add(operation.pk)
                duration = "" if operation.duration_ms is None else f" {operation.duration_ms} ms"
                detail = operation.error or operation.message
                self.stdout.write(f"  {operation.step:<12} {operation.outcome:<8}{duration}  {detail}".rstrip())
            if organization.status == Status.ACTIVE:
                took = (organization.activated_at - organization.created_at).total_seconds()  # type: ignore[operator]
                self.stdout.write(
                    self.style.SUCCESS(f"{organization.name} is active ({took:.1f} s after the request).")
                )
                return
            if organization.status == Status.FAILED:
                self.stderr.write(f"Provisioning of {organization.name} failed: {organization.last_error}")
                sys.exit(1)
            if time.monotonic() > deadline:
                self.stderr.write(
                    f"{organization.name} is still {organization.status} after {timeout} s; is a worker running?"
                )
                sys.exit(1)
            time.sleep(0.5)
