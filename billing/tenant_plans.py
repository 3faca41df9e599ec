"""The plan answers billing gives the tenants layer (registered in ``billing.apps``; see ``tenants.plans``)."""

from __future__ import annotations

import uuid
from collections.abc import Collection

from billing.models import Plan, Subscription


def active_plan_choices() -> list[tuple[str, str]]:
    """Active plans a new organisation may be given, as ``(code, "Name (code)")`` by code."""
    rows = Plan.objects.filter(active=True).order_by("code").values_list("code", "name")
    return [(code, f"{name} ({code})") for code, name in rows]


def live_plan_names(organization_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, str]:
    """Each organisation's live subscription's plan name, in one query."""
    rows = Subscription.objects.filter(
        customer__organization_id__in=list(organization_ids), status__in=Subscription.LIVE_STATUSES
    ).values_list("customer__organization_id", "plan__name")
    return dict(rows)
