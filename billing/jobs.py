"""RQ jobs of the ``billing`` queue: thin callers of one service each.

Scheduled (the provisioning helper wires the scheduler):
- ``billing.jobs.usage_readings_job``   every hour      (seats and contacts per active tenant)
- ``billing.jobs.renewals_job``         every 15 minutes (renew elapsed periods, invoice them)
- ``billing.jobs.dunning_job``          every hour       (past due, retries, suspension)
Per item (enqueued by hand, e.g. from an RQ dashboard):
- ``billing.jobs.subscription_renew_job(subscription_id)``

Every job is idempotent: the services lock and re-read rows and skip work already done, so a job that
runs twice, late, or on two workers at once changes nothing the second time.
"""

from __future__ import annotations

from typing import Any

from billing.services import dunning_run, renewals_run, subscription_renew, usage_readings_run
from ghostcrm.audit.services import Actor

QUEUE_NAME = "billing"
ACTOR = Actor.system("billing-scheduler")


def usage_readings_job() -> dict[str, Any]:
    summary = usage_readings_run(actor=ACTOR)
    return {"processed": summary.processed, "read": summary.changed, "failed": summary.failed}


def renewals_job() -> dict[str, Any]:
    summary = renewals_run(actor=ACTOR)
    return {"processed": summary.processed, "invoiced": summary.changed, "failed": summary.failed}


def dunning_job() -> dict[str, Any]:
    summary = dunning_run(actor=ACTOR)
    return {"processed": summary.processed, "advanced": summary.changed, "failed": summary.failed}


def subscription_renew_job(subscription_id: str) -> str:
    invoice = subscription_renew(subscription_id=subscription_id, actor=ACTOR)
    return str(invoice) if invoice is not None else "nothing due"
