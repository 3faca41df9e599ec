from __future__ import annotations

import re
from typing import Any

from django.apps import AppConfig
from django.core.exceptions import ValidationError


def _validate_retry_days(value: Any) -> None:
    if not all(isinstance(day, int) and not isinstance(day, bool) and day >= 0 for day in value):
        raise ValidationError("billing.dunning_retry_days must be a list of whole days, e.g. [1, 3, 5].")
    if list(value) != sorted(set(value)):
        raise ValidationError("billing.dunning_retry_days must be ascending without repeats, e.g. [1, 3, 5].")


def _validate_prefix(value: Any) -> None:
    if not re.fullmatch(r"[A-Z0-9]{1,8}", value):
        raise ValidationError("billing.number_prefix must be 1 to 8 capital letters or digits, e.g. GC.")


def _validate_required(value: Any) -> None:
    if not str(value).strip():
        raise ValidationError("billing.seller_name must not be empty: a legal invoice names its seller.")


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        # The settings registry reads models, importable only once the app registry is ready: ready() is
        # Django's documented place for these imports.
        from billing import tenant_plans  # noqa: PLC0415, RUF100
        from ghostcrm.core.system_settings import SettingSpec, register  # noqa: PLC0415, RUF100
        from tenants import plans  # noqa: PLC0415, RUF100

        # Tenants sits below billing: it asks for plans through these callables, never billing's models.
        plans.register(
            active_plan_choices=tenant_plans.active_plan_choices, live_plan_names=tenant_plans.live_plan_names
        )

        register(
            SettingSpec(
                key="billing.invoice_due_days",
                type=int,
                default=14,
                min_value=0,
                max_value=365,
                help_text="Days between finalising an invoice and its due date.",
            ),
            SettingSpec(
                key="billing.dunning_retry_days",
                type=list,
                default=[1, 3, 5],
                validators=(_validate_retry_days,),
                help_text="Days after the due date on which an unpaid invoice is retried (and a reminder sent).",
            ),
            SettingSpec(
                key="billing.dunning_grace_days",
                type=int,
                default=7,
                min_value=0,
                max_value=365,
                help_text="Days after the due date before an unpaid invoice suspends the tenant.",
            ),
            SettingSpec(
                key="billing.seller_name",
                type=str,
                default="GhostCRM",
                validators=(_validate_required,),
                help_text="The seller's legal name, printed at the top of every invoice.",
            ),
            SettingSpec(
                key="billing.seller_address",
                type=str,
                default="",
                help_text="The seller's postal address, printed on invoices (several lines allowed).",
            ),
            SettingSpec(
                key="billing.seller_tax_id",
                type=str,
                default="",
                help_text="The seller's VAT or tax registration number, printed on invoices.",
            ),
            SettingSpec(
                key="billing.number_prefix",
                type=str,
                default="GC",
                validators=(_validate_prefix,),
                help_text="Prefix of invoice and credit note numbers (GC-2026-000123, GC-CN-2026-000001).",
            ),
        )
