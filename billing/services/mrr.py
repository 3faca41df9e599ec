"""The MRR ledger: every subscription change records its MRR movement and is audited in one place."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

from django.http import HttpRequest

from billing import selectors
from billing.models import MrrMovement, Subscription
from billing.services.common import clean_save
from ghostcrm.audit.services import Actor, audit_record, model_snapshot


def mrr_movement_record(subscription: Subscription, before: int, at: dt.datetime) -> None:
    """Record the change of one subscription's MRR in the ledger the dashboard reads."""
    after = selectors.subscription_mrr(subscription)
    delta = after - before
    if delta == 0:
        return
    if before == 0:
        churned_before = subscription.mrr_movements.filter(kind=MrrMovement.Kind.CHURN).exists()
        kind = MrrMovement.Kind.REACTIVATION if churned_before else MrrMovement.Kind.NEW
    elif after == 0:
        kind = MrrMovement.Kind.CHURN
    else:
        kind = MrrMovement.Kind.EXPANSION if delta > 0 else MrrMovement.Kind.CONTRACTION
    MrrMovement.objects.create(
        subscription=subscription, occurred_at=at, kind=kind, delta=delta, currency=subscription.plan.currency
    )


@contextmanager
def subscription_saving(
    subscription: Subscription,
    *,
    action: str,
    actor: Actor,
    at: dt.datetime,
    request: HttpRequest | None = None,
    message: str = "",
) -> Iterator[Subscription]:
    """Change ``subscription`` inside the block; on leaving it, the row is validated and saved, its MRR change
    goes to the ledger at ``at`` and the change is audited. An error inside the block saves nothing."""
    before, mrr_before = model_snapshot(subscription), selectors.subscription_mrr(subscription)
    yield subscription
    clean_save(subscription)
    mrr_movement_record(subscription, mrr_before, at)
    audit_record(
        request=request,
        action=action,
        actor=actor,
        target=subscription,
        before=before,
        after=model_snapshot(subscription),
        message=message,
    )
