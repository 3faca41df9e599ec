"""What the billing admins share: running a service per object, the confirmation page of an action that
cannot be undone, and amounts shown in their currency."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.http import HttpRequest
from django.template.response import TemplateResponse

from billing.money import format_money
from ghostcrm.core.errors import ApplicationError


def run_one(request: HttpRequest, label: str, call: Any) -> bool:
    """Call a service for one object; its error becomes a message naming the object."""
    try:
        call()
    except ApplicationError as exc:
        messages.error(request, f"{label}: {exc.message}")
        return False
    return True


INVOICE_MONEY_FIELDS = (
    "subtotal",
    "tax",
    "total",
    "starting_balance",
    "amount_due",
    "amount_paid",
    "amount_credited",
)
PAYMENT_MONEY_FIELDS = ("amount", "amount_refunded")


def money_or_field(name: str, money_fields: tuple[str, ...]) -> str:
    return f"{name}_money" if name in money_fields else name


def add_money_displays(admin_class: type, model: type, money_fields: tuple[str, ...]) -> None:
    """Give ``admin_class`` a read-only ``<field>_money`` column per minor-unit field, in the row's currency."""
    for name in money_fields:
        field = model._meta.get_field(name)  # type: ignore[attr-defined]

        def display(self: Any, obj: Any, _name: str = name) -> str:
            return format_money(getattr(obj, _name), obj.currency)

        display.short_description = field.verbose_name  # type: ignore[attr-defined]
        setattr(admin_class, f"{name}_money", display)


def confirmation(
    admin_view: admin.ModelAdmin,  # type: ignore[type-arg]
    request: HttpRequest,
    *,
    action: str,
    title: str,
    consequence: str,
    headers: list[str],
    rows: list[tuple[Any, list[str], str]],
    form: forms.Form | None = None,
) -> TemplateResponse:
    """A page like Django's delete confirmation: what is selected, what will happen, Confirm or Cancel.

    ``rows`` are (object, cells, note): a note says why the action will not apply to that object."""
    context = {
        **admin_view.admin_site.each_context(request),
        "title": title,
        "action": action,
        "consequence": consequence,
        "headers": headers,
        "rows": [{"pk": obj.pk, "cells": cells, "note": note} for obj, cells, note in rows],
        "applicable": sum(1 for _, _, note in rows if not note),
        "form": form,
        "opts": admin_view.model._meta,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "billing/admin/action_confirm.html", context)
