"""One confirm-then-loop helper for admin actions that change state (suspend, void, revoke, ...).

The first POST of the action shows a confirmation page: the selected rows, what will happen, why a row will
not change, and an optional reason for the audit log. Confirming runs ``perform`` on each row; a refusal from
the service (an ``ApplicationError``) becomes a message about that row and the others carry on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from ghostcrm.core.errors import ApplicationError

CONFIRM_FIELD = "confirm"
REASON_FIELD = "reason"
MAX_REASON = 1000


def _no_note(obj: Any) -> str:
    return ""


@dataclass(frozen=True)
class ConfirmedAction:
    """What an action does, for its confirmation page and its result messages.

    ``perform(obj, reason)`` calls one service; ``note(obj)`` says why ``obj`` will not change ("" when it
    will); ``done`` starts the success message ("Suspended" -> "Suspended: ACME, Globex.").
    """

    name: str
    verb: str
    consequence: str
    headers: Sequence[str]
    cells: Callable[[Any], Sequence[object]]
    perform: Callable[[Any, str], object]
    done: str
    note: Callable[[Any], str] = field(default=_no_note)
    ask_reason: bool = True
    default_reason: str = ""
    danger: bool = False


def confirmed_action(
    model_admin: admin.ModelAdmin,  # type: ignore[type-arg]
    request: HttpRequest,
    queryset: QuerySet[Any],
    action: ConfirmedAction,
) -> HttpResponse | None:
    """The confirmation page (a response), or, once confirmed, the action run on each row (``None``)."""
    if request.POST.get(CONFIRM_FIELD) != "yes":
        return _confirmation_page(model_admin, request, list(queryset), action)
    reason = request.POST.get(REASON_FIELD, "").strip()[:MAX_REASON] or action.default_reason
    done: list[str] = []
    refused: list[str] = []
    for obj in queryset:
        try:
            action.perform(obj, reason)
        except ApplicationError as exc:
            refused.append(f"{obj}: {exc.message}")
        else:
            done.append(str(obj))
    if done:
        model_admin.message_user(request, f"{action.done}: {', '.join(done)}.", messages.SUCCESS)
    for problem in refused:
        model_admin.message_user(request, problem, messages.ERROR)
    return None


def _confirmation_page(
    model_admin: admin.ModelAdmin,  # type: ignore[type-arg]
    request: HttpRequest,
    objects: list[Model],
    action: ConfirmedAction,
) -> TemplateResponse:
    rows = [{"pk": obj.pk, "cells": list(action.cells(obj)), "note": action.note(obj)} for obj in objects]
    opts = model_admin.model._meta
    noun = opts.verbose_name if len(objects) == 1 else opts.verbose_name_plural
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"{action.verb.capitalize()} {len(objects)} {noun}?",
        "action": action,
        "rows": rows,
        "applicable": sum(1 for row in rows if not row["note"]),
        "opts": opts,
        "action_checkbox_name": ACTION_CHECKBOX_NAME,
        "confirm_field": CONFIRM_FIELD,
        "reason_field": REASON_FIELD,
        "max_reason": MAX_REASON,
    }
    return TemplateResponse(request, "admin/confirm_action.html", context)
