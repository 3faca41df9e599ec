"""Billing, shaped like Stripe Billing (and dj-stripe's mirror of it), with the control plane as system of record.

Product -> Plan (Stripe's Price: flat, per-seat or tiered; monthly or yearly) -> Subscription of a Customer
(the organisation) -> Invoices with lines, credit notes, payments and refunds. Every amount is an integer
number of minor units next to a currency code (see ``billing.money``). ``provider_id`` columns hold the
Stripe object ids when a Stripe account drives the data; without one they stay empty.

Only portable ORM features: no PostgreSQL-only fields, no JSON lookups; unique constraints on optional
columns are conditional (``IS NOT NULL`` / ``IN``), which SQL Server (filtered indexes), PostgreSQL and
SQLite all support; so optional provider ids are NULL, never the empty string, when absent.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from billing.money import CURRENCY_CHOICES, format_money, validate_currency_code, validate_non_negative


def _provider_unique(model: str) -> models.UniqueConstraint:
    return models.UniqueConstraint(
        fields=["provider_id"], condition=Q(provider_id__isnull=False), name=f"billing_{model}_provider_id_uniq"
    )


class Interval(models.TextChoices):
    MONTH = "month", "Monthly"
    YEAR = "year", "Yearly"


class Product(models.Model):
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    active = models.BooleanField(default=True)
    provider_id = models.CharField("Stripe product id", max_length=255, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [_provider_unique("product")]

    def __str__(self) -> str:
        return self.name


class Plan(models.Model):
    """A price of a product (Stripe ``Price``) with the limits the CRM enforces for tenants on it."""

    class Scheme(models.TextChoices):
        FLAT = "flat", "Flat rate"
        PER_SEAT = "per_seat", "Per seat"
        TIERED = "tiered", "Tiered (per seat)"

    class TiersMode(models.TextChoices):
        GRADUATED = "graduated", "Graduated"
        VOLUME = "volume", "Volume"

    code = models.SlugField(max_length=64, unique=True, help_text="Referenced by Organization.plan_code.")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="plans")
    name = models.CharField(max_length=200)
    currency = models.CharField(max_length=3, choices=CURRENCY_CHOICES, validators=[validate_currency_code])
    interval = models.CharField(max_length=5, choices=Interval.choices, default=Interval.MONTH)
    scheme = models.CharField(max_length=10, choices=Scheme.choices, default=Scheme.FLAT)
    tiers_mode = models.CharField(max_length=10, choices=TiersMode.choices, blank=True)
    unit_amount = models.BigIntegerField(
        default=0,
        validators=[validate_non_negative],
        help_text="Minor units: the period price (flat) or the price of one seat (per seat); unused when tiered.",
    )
    trial_days = models.PositiveIntegerField(default=0)
    seat_limit = models.PositiveIntegerField(null=True, blank=True, help_text="Empty: unlimited.")
    contact_limit = models.PositiveIntegerField(null=True, blank=True, help_text="Empty: unlimited.")
    storage_limit_mb = models.PositiveIntegerField(null=True, blank=True, help_text="Empty: unlimited.")
    active = models.BooleanField(default=True)
    provider_id = models.CharField("Stripe price id", max_length=255, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["code"]
        constraints = [_provider_unique("plan")]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"

    def clean(self) -> None:
        if self.currency:
            self.currency = self.currency.upper()
        if self.scheme == self.Scheme.TIERED and not self.tiers_mode:
            raise ValidationError({"tiers_mode": "A tiered plan needs a tiers mode (graduated or volume)."})
        if self.scheme != self.Scheme.TIERED and self.tiers_mode:
            raise ValidationError({"tiers_mode": "Only tiered plans have a tiers mode."})

    @property
    def price_display(self) -> str:
        if self.scheme == self.Scheme.TIERED:
            return f"tiered ({self.tiers_mode}) / {self.interval}"
        suffix = " per seat" if self.scheme == self.Scheme.PER_SEAT else ""
        return f"{format_money(self.unit_amount, self.currency)}{suffix} / {self.interval}"


class PlanTier(models.Model):
    """One tier of a tiered plan (Stripe ``tiers``): seats up to ``up_to`` (empty: the last, unbounded tier)."""

    plan = models.ForeignKey(Plan, on_delete=models.CASCADE, related_name="tiers")
    up_to = models.PositiveIntegerField(null=True, blank=True, help_text="Empty: infinity (the last tier).")
    unit_amount = models.BigIntegerField(default=0, validators=[validate_non_negative], help_text="Minor units.")
    flat_amount = models.BigIntegerField(default=0, validators=[validate_non_negative], help_text="Minor units.")

    class Meta:
        ordering = ["plan", models.F("up_to").asc(nulls_last=True)]
        constraints = [
            models.UniqueConstraint(
                fields=["plan", "up_to"], condition=Q(up_to__isnull=False), name="billing_tier_plan_up_to_uniq"
            ),
            models.UniqueConstraint(
                fields=["plan"], condition=Q(up_to__isnull=True), name="billing_tier_one_unbounded_per_plan"
            ),
        ]

    def __str__(self) -> str:
        return f"up to {self.up_to if self.up_to is not None else '∞'}"


class TaxRate(models.Model):
    """An exclusive tax rate (added on top of line amounts), like Stripe's ``TaxRate`` with inclusive=false."""

    name = models.CharField(max_length=100)
    percentage = models.DecimalField(
        max_digits=7, decimal_places=4, validators=[MinValueValidator(0), MaxValueValidator(100)]
    )
    country = models.CharField(max_length=2, blank=True)
    active = models.BooleanField(default=True)
    provider_id = models.CharField("Stripe tax rate id", max_length=255, null=True, blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [_provider_unique("taxrate")]

    def __str__(self) -> str:
        # format "f": Decimal("20.0000").normalize() alone prints as "2E+1".
        return f"{self.name} {format(Decimal(self.percentage).normalize(), 'f')}%"


class Customer(models.Model):
    """The billing customer: one per organisation, with its billing contact."""

    organization = models.OneToOneField("organizations.Organization", on_delete=models.PROTECT, related_name="billing")
    email = models.EmailField("billing contact e-mail")
    name = models.CharField(max_length=200, blank=True)
    address = models.TextField(blank=True, help_text="Printed on invoices.")
    tax_rate = models.ForeignKey(TaxRate, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    balance = models.BigIntegerField(
        default=0, help_text="Minor units, Stripe's convention: negative is credit owed to the customer."
    )
    balance_currency = models.CharField(
        max_length=3, blank=True, choices=CURRENCY_CHOICES, validators=[validate_currency_code]
    )
    suspended_for_nonpayment = models.BooleanField(
        default=False, help_text="Set when dunning suspended the tenant; a payment resumes it."
    )
    provider_id = models.CharField("Stripe customer id", max_length=255, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [_provider_unique("customer")]

    def __str__(self) -> str:
        return self.name or self.email


class Subscription(models.Model):
    class Status(models.TextChoices):
        TRIALING = "trialing", "Trialing"
        ACTIVE = "active", "Active"
        PAST_DUE = "past_due", "Past due"
        CANCELED = "canceled", "Canceled"
        UNPAID = "unpaid", "Unpaid"
        INCOMPLETE = "incomplete", "Incomplete"
        PAUSED = "paused", "Paused"

    class ProrationBehavior(models.TextChoices):
        CREATE_PRORATIONS = "create_prorations", "Create prorations (on the next invoice)"
        ALWAYS_INVOICE = "always_invoice", "Invoice the prorations now"
        NONE = "none", "No proration"

    # Statuses that still belong to the customer's one current subscription.
    LIVE_STATUSES = ("trialing", "active", "past_due", "unpaid", "incomplete", "paused")
    # Statuses that count towards MRR (Stripe's own dashboard excludes trials).
    MRR_STATUSES = ("active", "past_due")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="subscriptions")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="subscriptions")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.INCOMPLETE, db_index=True)
    seats = models.PositiveIntegerField(default=1, validators=[MinValueValidator(1)])
    billing_cycle_anchor = models.DateTimeField()
    current_period_start = models.DateTimeField()
    current_period_end = models.DateTimeField(db_index=True)
    trial_end = models.DateTimeField(null=True, blank=True)
    cancel_at_period_end = models.BooleanField(default=False)
    canceled_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True, help_text="First became paying (after any trial).")
    past_due_since = models.DateTimeField(null=True, blank=True)
    provider_id = models.CharField("Stripe subscription id", max_length=255, null=True, blank=True)
    provider_updated = models.BigIntegerField(
        null=True, blank=True, help_text="`created` of the last provider event applied (older events are ignored)."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            _provider_unique("subscription"),
            models.UniqueConstraint(
                fields=["customer"],
                condition=Q(status__in=["trialing", "active", "past_due", "unpaid", "incomplete", "paused"]),
                name="billing_one_live_subscription_per_customer",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.customer} on {self.plan.code} ({self.status})"

    @property
    def organization_id(self) -> uuid.UUID:
        return self.customer.organization_id


class MrrMovement(models.Model):
    """One change of a subscription's MRR (new, expansion, contraction, churn, reactivation): the dashboard's ledger."""

    class Kind(models.TextChoices):
        NEW = "new", "New"
        EXPANSION = "expansion", "Expansion"
        CONTRACTION = "contraction", "Contraction"
        CHURN = "churn", "Churn"
        REACTIVATION = "reactivation", "Reactivation"

    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="mrr_movements")
    occurred_at = models.DateTimeField(db_index=True)
    kind = models.CharField(max_length=12, choices=Kind.choices)
    delta = models.BigIntegerField(help_text="Minor units per month; negative for contraction and churn.")
    currency = models.CharField(max_length=3, choices=CURRENCY_CHOICES, validators=[validate_currency_code])

    class Meta:
        ordering = ["occurred_at", "id"]

    def __str__(self) -> str:
        return f"{self.kind} {format_money(self.delta, self.currency)}"


class UsageReading(models.Model):
    """Seats (active CRM users) and contacts (not deleted) counted in a tenant schema at one moment."""

    organization = models.ForeignKey(
        "organizations.Organization", on_delete=models.CASCADE, related_name="usage_readings"
    )
    taken_at = models.DateTimeField(db_index=True)
    seats = models.PositiveIntegerField()
    contacts = models.PositiveIntegerField()

    class Meta:
        ordering = ["-taken_at", "-id"]
        indexes = [models.Index(fields=["organization", "-taken_at"], name="billing_usage_org_taken")]

    def __str__(self) -> str:
        return f"{self.seats} seats, {self.contacts} contacts at {self.taken_at:%Y-%m-%d %H:%M}"


class DocumentCounter(models.Model):
    """The last number given per document kind and year; its row is locked while a number is taken (no gaps)."""

    kind = models.CharField(max_length=8)
    year = models.PositiveIntegerField()
    last_number = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["kind", "year"], name="billing_counter_kind_year_uniq")]

    def __str__(self) -> str:
        return f"{self.kind} {self.year}: {self.last_number}"


class Invoice(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        OPEN = "open", "Open"
        PAID = "paid", "Paid"
        VOID = "void", "Void"
        UNCOLLECTIBLE = "uncollectible", "Uncollectible"

    class Reason(models.TextChoices):
        SUBSCRIPTION_CREATE = "subscription_create", "Subscription created"
        SUBSCRIPTION_CYCLE = "subscription_cycle", "Renewal"
        SUBSCRIPTION_UPDATE = "subscription_update", "Subscription change"
        MANUAL = "manual", "Manual"

    PERIOD_REASONS = ("subscription_create", "subscription_cycle")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    number = models.CharField(max_length=32, null=True, blank=True, editable=False)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="invoices")
    subscription = models.ForeignKey(
        Subscription, null=True, blank=True, on_delete=models.PROTECT, related_name="invoices"
    )
    status = models.CharField(max_length=14, choices=Status.choices, default=Status.DRAFT, db_index=True)
    billing_reason = models.CharField(max_length=20, choices=Reason.choices, default=Reason.MANUAL)
    currency = models.CharField(max_length=3, choices=CURRENCY_CHOICES, validators=[validate_currency_code])
    period_start = models.DateTimeField(null=True, blank=True)
    period_end = models.DateTimeField(null=True, blank=True)
    subtotal = models.BigIntegerField(default=0)
    tax = models.BigIntegerField(default=0)
    total = models.BigIntegerField(default=0)
    starting_balance = models.BigIntegerField(default=0, help_text="Customer credit applied (negative) at finalise.")
    amount_due = models.BigIntegerField(default=0)
    amount_paid = models.BigIntegerField(default=0)
    amount_credited = models.BigIntegerField(default=0, help_text="Credit notes against the open invoice.")
    due_date = models.DateTimeField(null=True, blank=True, db_index=True)
    finalized_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    voided_at = models.DateTimeField(null=True, blank=True)
    marked_uncollectible_at = models.DateTimeField(null=True, blank=True)
    attempt_count = models.PositiveIntegerField(default=0, help_text="Dunning attempts (reminders or charges).")
    next_payment_attempt = models.DateTimeField(null=True, blank=True)
    memo = models.TextField(blank=True)
    provider_id = models.CharField("Stripe invoice id", max_length=255, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = [("finalize_invoice", "Can finalise, void and mark invoices paid")]
        constraints = [
            _provider_unique("invoice"),
            models.UniqueConstraint(
                fields=["number"], condition=Q(number__isnull=False), name="billing_invoice_number_uniq"
            ),
            # Renewal idempotency: one period invoice per subscription period, whoever races to create it.
            models.UniqueConstraint(
                fields=["subscription", "period_start"],
                condition=Q(billing_reason__in=["subscription_create", "subscription_cycle"]),
                name="billing_invoice_one_per_period",
            ),
        ]

    def __str__(self) -> str:
        return self.number or f"draft {str(self.id)[:8]}"

    @property
    def amount_remaining(self) -> int:
        return max(self.amount_due - self.amount_paid - self.amount_credited, 0)

    def display(self, field: str) -> str:
        value: Any = getattr(self, field)
        return format_money(value, self.currency)


class InvoiceLine(models.Model):
    """A line of an invoice, or a pending proration item (no invoice yet) waiting for the next one."""

    class Kind(models.TextChoices):
        SUBSCRIPTION = "subscription", "Subscription"
        PRORATION = "proration", "Proration"
        ADJUSTMENT = "adjustment", "Adjustment"

    invoice = models.ForeignKey(Invoice, null=True, blank=True, on_delete=models.CASCADE, related_name="lines")
    subscription = models.ForeignKey(
        Subscription, null=True, blank=True, on_delete=models.CASCADE, related_name="pending_items"
    )
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.SUBSCRIPTION)
    description = models.CharField(max_length=300)
    plan = models.ForeignKey(Plan, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    quantity = models.PositiveIntegerField(default=1)
    amount = models.BigIntegerField(help_text="Minor units, already rounded; negative for credits.")
    currency = models.CharField(max_length=3, choices=CURRENCY_CHOICES, validators=[validate_currency_code])
    period_start = models.DateTimeField(null=True, blank=True)
    period_end = models.DateTimeField(null=True, blank=True)
    tax_rate = models.ForeignKey(TaxRate, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    tax_amount = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.description}: {format_money(self.amount, self.currency)}"


class CreditNote(models.Model):
    class Status(models.TextChoices):
        ISSUED = "issued", "Issued"
        VOID = "void", "Void"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    number = models.CharField(max_length=32, unique=True, editable=False)
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="credit_notes")
    amount = models.BigIntegerField(validators=[validate_non_negative])
    currency = models.CharField(max_length=3, choices=CURRENCY_CHOICES, validators=[validate_currency_code])
    reason = models.CharField(max_length=200)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.ISSUED)
    refund = models.ForeignKey("Refund", null=True, blank=True, on_delete=models.PROTECT, related_name="credit_notes")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.number


class Payment(models.Model):
    class Status(models.TextChoices):
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    class Method(models.TextChoices):
        MANUAL = "manual", "Recorded by hand"
        BANK_TRANSFER = "bank_transfer", "Bank transfer"
        STRIPE = "stripe", "Stripe"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="payments")
    amount = models.BigIntegerField(validators=[validate_non_negative])
    currency = models.CharField(max_length=3, choices=CURRENCY_CHOICES, validators=[validate_currency_code])
    status = models.CharField(max_length=10, choices=Status.choices, db_index=True)
    method = models.CharField(max_length=14, choices=Method.choices, default=Method.MANUAL)
    provider_reference = models.CharField(
        max_length=255, null=True, blank=True, help_text="Stripe charge / payment intent id."
    )
    failure_message = models.CharField(max_length=500, blank=True)
    amount_refunded = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = [("refund_payment", "Can refund payments")]
        constraints = [
            models.UniqueConstraint(
                fields=["provider_reference"],
                condition=Q(provider_reference__isnull=False),
                name="billing_payment_provider_ref_uniq",
            )
        ]

    def __str__(self) -> str:
        return f"{format_money(self.amount, self.currency)} {self.status} ({self.invoice})"


class Refund(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="refunds")
    amount = models.BigIntegerField(validators=[MinValueValidator(1)])
    currency = models.CharField(max_length=3, choices=CURRENCY_CHOICES, validators=[validate_currency_code])
    reason = models.CharField(max_length=200)
    provider_reference = models.CharField(max_length=255, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider_reference"],
                condition=Q(provider_reference__isnull=False),
                name="billing_refund_provider_ref_uniq",
            )
        ]

    def __str__(self) -> str:
        return f"refund {format_money(self.amount, self.currency)}"


class WebhookEvent(models.Model):
    """A provider event, stored once (unique event id) before it is processed."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PROCESSED = "processed", "Processed"
        IGNORED = "ignored", "Ignored (stale or unhandled)"
        FAILED = "failed", "Failed"

    provider = models.CharField(max_length=20, default="stripe")
    event_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100, db_index=True)
    object_id = models.CharField(max_length=255, blank=True)
    created = models.BigIntegerField(help_text="The provider's `created` (Unix seconds).")
    livemode = models.BooleanField(default=False)
    payload = models.TextField(help_text="The raw JSON body as received.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"


class RevenueDashboard(Subscription):
    """No table: an admin entry (under Billing on the admin index) that opens the revenue dashboard."""

    class Meta:
        proxy = True
        verbose_name = "revenue dashboard"
        verbose_name_plural = "revenue dashboard"
