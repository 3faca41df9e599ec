from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from ghostcrm.accounts.models import InvitationRole
from ghostcrm.accounts.services.invitations import invitation_create
from ghostcrm.audit.services import Actor
from ghostcrm.core.commands import ServiceCommand
from ghostcrm.organizations.selectors import organization_resolve


class Command(ServiceCommand):
    help = (
        "Invite someone by e-mail: a control-plane role (super_admin: Super admin, support: Support, billing: "
        "Billing) or tenant_admin (Tenant CRM admin) of an organisation (--organization). With the console e-mail "
        "backend (development) the message and its link are printed here."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--email", required=True)
        parser.add_argument("--role", required=True, choices=InvitationRole.values)
        parser.add_argument(
            "--organization", default=None, help="Organisation slug, schema name or id (Tenant CRM admin only)."
        )

    def run(self, *args: Any, **options: Any) -> None:
        organization_id = None
        if options["organization"]:
            organization_id = organization_resolve(identifier=options["organization"]).pk
        invitation = invitation_create(
            email=options["email"],
            role=options["role"],
            inviter=None,
            organization_id=organization_id,
            actor=Actor.system("invite_user command"),
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Invitation {invitation.pk} sent to {invitation.email} as {invitation.get_role_display()}; "
                f"the link expires at {invitation.expires_at:%Y-%m-%d %H:%M} UTC."
            )
        )
