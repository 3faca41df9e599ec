"""Writes of billing, one module per domain. Admin actions, commands, RQ jobs and webhooks are thin callers.

Every state change locks its row (``select_for_update``) before validating, writes in one transaction,
is audited, and e-mails the billing contact where the customer should know (sent on commit).
A lock takes its own row only, never with ``select_related``: on PostgreSQL that would also lock the joined
rows (a plan shared by every subscriber would serialise them all), on SQL Server it would not, and
mssql-django refuses ``of=``; the related row is read after the lock.

The names below are re-exported so that ``from billing import services; services.invoice_finalize(...)``
keeps working for the admin, the webhooks, the jobs, the commands and other apps.
"""

from billing.services.common import RunSummary
from billing.services.credit_notes import credit_note_create
from billing.services.customers import customer_ensure
from billing.services.dunning import dunning_due, dunning_run, invoice_dunning_step
from billing.services.invoices import (
    LineInput,
    invoice_currency,
    invoice_draft_create,
    invoice_finalize,
    invoice_mark_uncollectible,
    invoice_void,
)
from billing.services.payments import invoice_mark_paid, payment_failure_record, payment_record, payment_refund
from billing.services.renewals import renewals_due, renewals_run, subscription_renew
from billing.services.subscriptions import (
    ChangeResult,
    ProviderSubscriptionState,
    subscription_cancel,
    subscription_change,
    subscription_create,
    subscription_provider_sync,
)
from billing.services.usage import usage_due, usage_reading_take, usage_readings_run

__all__ = [
    "ChangeResult",
    "LineInput",
    "ProviderSubscriptionState",
    "RunSummary",
    "credit_note_create",
    "customer_ensure",
    "dunning_due",
    "dunning_run",
    "invoice_currency",
    "invoice_draft_create",
    "invoice_dunning_step",
    "invoice_finalize",
    "invoice_mark_paid",
    "invoice_mark_uncollectible",
    "invoice_void",
    "payment_failure_record",
    "payment_record",
    "payment_refund",
    "renewals_due",
    "renewals_run",
    "subscription_cancel",
    "subscription_change",
    "subscription_create",
    "subscription_provider_sync",
    "subscription_renew",
    "usage_due",
    "usage_reading_take",
    "usage_readings_run",
]
