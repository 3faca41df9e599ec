"""Re-run stored Stripe events through the same, idempotent processing path as the webhook."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from billing.models import WebhookEvent
from billing.webhooks import webhook_event_process
from ghostcrm.core.commands import ServiceCommand
from ghostcrm.core.errors import ApplicationError, NotFound, ValidationError
from ghostcrm.core.progress import Progress

STATUSES = [choice for choice, _ in WebhookEvent.Status.choices]


class Command(ServiceCommand):
    help = (
        "Replay stored Stripe events. By default the failed and pending ones; --all includes processed and ignored "
        "events (handlers are idempotent, so applied work is not applied twice)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--event", action="append", default=[], help="A Stripe event id (evt_...); repeatable.")
        parser.add_argument(
            "--status", action="append", choices=STATUSES, default=[], help="Only events in this status; repeatable."
        )
        parser.add_argument("--all", action="store_true", help="Every stored event, oldest first.")
        parser.add_argument("--type", default="", help="Only events of this type, e.g. invoice.paid.")

    def run(self, *args: Any, **options: Any) -> None:
        if options["all"] and (options["status"] or options["event"]):
            raise ValidationError("Use --all alone, or --status / --event, not both.")
        events = WebhookEvent.objects.order_by("created", "id")
        if options["event"]:
            events = events.filter(event_id__in=options["event"])
            missing = set(options["event"]) - set(events.values_list("event_id", flat=True))
            if missing:
                raise NotFound(f"No stored event with id {', '.join(sorted(missing))}.")
        elif options["status"]:
            events = events.filter(status__in=options["status"])
        elif not options["all"]:
            events = events.filter(status__in=[WebhookEvent.Status.FAILED, WebhookEvent.Status.PENDING])
        if options["type"]:
            events = events.filter(type=options["type"])
        ids = list(events.values_list("pk", "event_id"))
        counts: dict[str, int] = {}
        failed: list[str] = []
        with Progress(self.stdout, total=len(ids), label="replay", summary=False) as progress:
            for pk, event_id in ids:
                # An unexpected error comes back as a failed event (recorded, logged): carry on with the others.
                event = webhook_event_process(event_id=pk, force=True, raise_unexpected=False)
                status = event.status
                if status == WebhookEvent.Status.FAILED:
                    failed.append(f"{event_id}: {event.error}")
                counts[status] = counts.get(status, 0) + 1
                progress.advance(item=f"{event_id} {status}")
        summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "nothing to replay"
        self.stdout.write(f"Replayed {len(ids)} event(s): {summary}.")
        for line in failed:
            self.stderr.write(f"  {line}")
        if failed:  # exit status 1, so a script or an operator sees that something still needs attention
            raise ApplicationError(f"{len(failed)} event(s) failed again; see the lines above.", code="replay_failed")
