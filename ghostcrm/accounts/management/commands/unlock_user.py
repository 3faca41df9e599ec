from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from ghostcrm.accounts.services.lockout import user_unlock
from ghostcrm.audit.services import Actor
from ghostcrm.core.commands import ServiceCommand


class Command(ServiceCommand):
    help = "Lift the sign-in lockout of an account (all addresses, or one with --ip). Audited."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--email", required=True, help="The account's e-mail address (the sign-in name).")
        parser.add_argument("--ip", default=None, help="Only clear failures from this IP address.")

    def run(self, *args: Any, **options: Any) -> None:
        email = options["email"].strip().lower()
        count = user_unlock(email=email, ip_address=options["ip"], actor=Actor.system("unlock_user command"))
        if count:
            self.stdout.write(self.style.SUCCESS(f"Unlocked {email}: cleared {count} failed-attempt record(s)."))
        else:
            self.stdout.write(f"No failed attempts were recorded for {email}; nothing was locked (recorded anyway).")
