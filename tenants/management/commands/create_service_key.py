from __future__ import annotations

import datetime as dt
import re
from typing import Any

from django.core.management.base import CommandParser
from django.utils import timezone

from ghostcrm.core.commands import ServiceCommand
from ghostcrm.core.errors import ValidationError
from tenants.keys import SCOPES, service_key_create
from tenants.management.commands._cli import cli_actor


def parse_expiry(value: str) -> dt.datetime:
    """``30d`` / ``12h`` from now, or an ISO date or date-time (UTC unless it says otherwise)."""
    relative = re.fullmatch(r"(\d+)([dh])", value.strip())
    if relative:
        amount, unit = int(relative[1]), relative[2]
        return timezone.now() + (dt.timedelta(days=amount) if unit == "d" else dt.timedelta(hours=amount))
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValidationError(
            f"--expires {value!r} is neither a duration (30d, 12h) nor an ISO date (2027-01-31)."
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


class Command(ServiceCommand):
    help = "Create a service-role API key and print it once (only its hash is stored)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True, help="Who or what uses the key.")
        parser.add_argument("--scopes", required=True, help=f"Comma-separated, from: {', '.join(SCOPES)}.")
        parser.add_argument("--expires", default="", help="30d, 12h, or an ISO date; default: never.")

    def run(self, *args: Any, **options: Any) -> None:
        scopes = [s for s in re.split(r"[,\s]+", options["scopes"]) if s]
        expires_at = parse_expiry(options["expires"]) if options["expires"] else None
        key, raw = service_key_create(
            name=options["name"], scopes=scopes, expires_at=expires_at, actor=cli_actor("create_service_key")
        )
        self.stdout.write(
            f"Service key {key.name!r} (id {key.pk}, scopes {key.scopes}, expires {expires_at or 'never'})."
        )
        self.stdout.write("Copy it now; it is not stored and will not be shown again:")
        self.stdout.write(raw)
