"""What the billing admins share: running a service per object, the confirmation page of an action that
cannot be undone, and amounts shown in their currency."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils.http import url_has_allowed_host_and_scheme

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


class OrganisationColumn:
    """An ``organisation`` column and read-only field: the row's organisation under the README's spelling (the
    model field keeps the code's, ``organization``)."""

    @admin.display(description="organisation", ordering="organization__name")
    def organisation(self, obj: Any) -> Any:
        return obj.organization


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


NEXT_FIELD = "_next"  # where an action started from an object's page returns once done


class ReturnToPageMixin:
    """An action started from a button on an object's page (posting ``_next``, carried through its confirmation
    or form page) goes back to that page when done, instead of to the list."""

    def response_action(self, request: HttpRequest, queryset: QuerySet[Any]) -> HttpResponse | None:
        response = super().response_action(request, queryset)  # type: ignore[misc]
        target = request.POST.get(NEXT_FIELD, "")
        safe = url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()})
        if isinstance(response, HttpResponseRedirect) and target and safe:
            return HttpResponseRedirect(target)
        return response  # type: ignore[no-any-return]


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
        "next": request.POST.get(NEXT_FIELD, ""),
        "opts": admin_view.model._meta,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "billing/admin/action_confirm.html", context)
