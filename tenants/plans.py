"""Billing plans as tenants sees them. Billing sits above tenants in the layers, so it supplies these
callables when it loads (``billing.apps``); without billing there are no plans.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

ActivePlanChoices = Callable[[], list[tuple[str, str]]]
LivePlanNames = Callable[[Collection[uuid.UUID]], dict[uuid.UUID, str]]


def _no_plans() -> list[tuple[str, str]]:
    return []


def _no_subscriptions(organization_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, str]:
    return {}


@dataclass
class _Providers:
    active_plan_choices: ActivePlanChoices = field(default=_no_plans)
    live_plan_names: LivePlanNames = field(default=_no_subscriptions)


_providers = _Providers()


def register(*, active_plan_choices: ActivePlanChoices, live_plan_names: LivePlanNames) -> None:
    """Billing's answers: the active plans ``(code, "Name (code)")`` by code, and each organisation's live
    subscription's plan name (organisations without one are left out)."""
    _providers.active_plan_choices = active_plan_choices
    _providers.live_plan_names = live_plan_names


def active_plan_choices() -> list[tuple[str, str]]:
    return _providers.active_plan_choices()


def live_plan_names(organization_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, str]:
    return _providers.live_plan_names(organization_ids)
