"""Billing customers: one per organisation, created on first use; credit added to their balance."""

from __future__ import annotations

import uuid

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpRequest

from billing.models import Customer
from billing.money import format_money
from billing.services.common import clean_save
from ghostcrm.audit.services import Actor, audit_record, model_snapshot
from ghostcrm.core.errors import NotFound, ValidationError
from ghostcrm.organizations.models import Organization


def customer_ensure(
    *, organization_id: uuid.UUID | str, actor: Actor, email: str | None = None, request: HttpRequest | None = None
) -> Customer:
    """The organisation's billing customer, created on first use with the organisation's admin e-mail."""
    customer = Customer.objects.filter(organization_id=organization_id).first()
    if customer is not None:
        return customer
    try:
        organization = Organization.objects.get(pk=organization_id)
    except (Organization.DoesNotExist, DjangoValidationError):
        raise NotFound(f"There is no organisation {organization_id}.", code="organization_not_found") from None
    customer = Customer(organization=organization, email=email or organization.admin_email, name=organization.name)
    clean_save(customer)
    audit_record(
        request=request, action="billing.customer.create", actor=actor, target=customer, after=model_snapshot(customer)
    )
    return customer


def customer_credit_add(
    *, customer_id: int, amount: int, currency: str, actor: Actor, message: str, request: HttpRequest | None = None
) -> None:
    """Give the customer ``amount`` of credit (Stripe's convention: the balance goes down), audited."""
    customer = Customer.objects.select_for_update().get(pk=customer_id)
    if customer.balance != 0 and customer.balance_currency not in ("", currency):
        raise ValidationError(
            f"The customer holds a balance in {customer.balance_currency}; cannot add {currency} credit.",
            code="currency_mismatch",
        )
    before = model_snapshot(customer)
    customer.balance -= amount
    customer.balance_currency = currency
    customer.save(update_fields=["balance", "balance_currency"])
    audit_record(
        request=request,
        action="billing.customer.credit",
        actor=actor,
        target=customer,
        organization_id=customer.organization_id,
        before=before,
        after=model_snapshot(customer),
        message=f"{format_money(amount, currency)} credit: {message}",
    )
