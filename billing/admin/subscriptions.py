"""Subscriptions: start one, change plan or seats with an invoice preview, cancel, renew now."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from billing import selectors, services
from billing.admin.common import confirmation, run_one
from billing.forms import ChangePlanForm, SubscriptionStartForm, proration_date_parse
from billing.models import Subscription
from billing.money import format_money
from ghostcrm.audit.services import Actor
from ghostcrm.core.admin_base import AuditedModelAdmin
from ghostcrm.core.errors import ApplicationError


@admin.register(Subscription)
class SubscriptionAdmin(AuditedModelAdmin):
    list_display = (
        "customer",
        "plan",
        "status",
        "seats",
        "current_period_end",
        "cancel_at_period_end",
        "mrr_display",
    )
    list_filter = ("status", "plan", "cancel_at_period_end")
    search_fields = ("customer__name", "customer__email", "customer__organization__slug", "=id")
    list_select_related = ("customer", "plan")
    actions = ["change_plan", "cancel_at_end", "renew_now"]
    readonly_fields = ["change_plan_link", *[f.name for f in Subscription._meta.fields], "upcoming_invoice"]

    def get_urls(self) -> list[Any]:
        own = [
            path("start/", self.admin_site.admin_view(self.start_view), name="billing_subscription_start"),
            path(
                "<uuid:subscription_id>/change-plan/",
                self.admin_site.admin_view(self.change_plan_view),
                name="billing_subscription_change_plan",
            ),
        ]
        return own + super().get_urls()

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: Any = None) -> HttpResponse:
        return self.start_view(request)  # a subscription starts through the service, never a bare row

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # cancel instead: deleting would drop its MRR history

    def get_queryset(self, request: HttpRequest) -> QuerySet[Subscription]:
        # The MRR column prices tiered plans from their tiers: one query for all rows, not one per row.
        return super().get_queryset(request).prefetch_related("plan__tiers")

    @admin.display(description="MRR")
    def mrr_display(self, obj: Subscription) -> str:
        return format_money(selectors.subscription_mrr(obj), obj.plan.currency)

    @admin.display(description="plan and seats")
    def change_plan_link(self, obj: Subscription) -> str:
        url = reverse("admin:billing_subscription_change_plan", args=[obj.pk])
        return format_html('{} x {} <a class="button" href="{}">Change plan or seats…</a>', obj.plan, obj.seats, url)

    @admin.display(description="upcoming invoice")
    def upcoming_invoice(self, obj: Subscription) -> str:
        if obj.status in (Subscription.Status.CANCELED, Subscription.Status.INCOMPLETE) or obj.cancel_at_period_end:
            return "none (the subscription ends)"
        preview = selectors.upcoming_invoice(obj)
        return (
            f"{format_money(preview.total, preview.currency)} on {preview.period_start:%Y-%m-%d} "
            f"({len(preview.lines)} line(s))"
        )

    def start_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_add_permission(request):
            raise DjangoPermissionDenied
        form = SubscriptionStartForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                subscription = services.subscription_create(
                    organization_id=data["organization"].pk,
                    plan_code=data["plan"].code,
                    seats=data["seats"],
                    trial_days=data["trial_days"],
                    billing_email=data["billing_email"] or None,
                    actor=Actor.for_user(request.user),
                    request=request,
                )
            except ApplicationError as exc:
                form.add_error(None, exc.message)
            else:
                messages.success(request, f"Subscription started: {subscription}.")
                return HttpResponseRedirect(reverse("admin:billing_subscription_change", args=[subscription.pk]))
        context = {**self.admin_site.each_context(request), "title": "Start a subscription", "form": form,
                   "opts": self.model._meta}  # fmt: skip
        return TemplateResponse(request, "billing/admin/subscription_start.html", context)

    def change_plan_view(self, request: HttpRequest, subscription_id: Any) -> HttpResponse:
        """Step 1: choose plan, seats and proration; step 2: the invoice preview; step 3: confirm."""
        if not self.has_change_permission(request):
            raise DjangoPermissionDenied
        subscription = get_object_or_404(Subscription.objects.select_related("plan", "customer"), pk=subscription_id)
        initial = {
            "plan": subscription.plan_id,
            "seats": subscription.seats,
            "proration_behavior": Subscription.ProrationBehavior.CREATE_PRORATIONS,
        }
        form = ChangePlanForm(request.POST or None, initial=initial)
        preview, proration_date = None, None
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            arguments = {
                "plan_code": data["plan"].code,
                "seats": data["seats"],
                "proration_behavior": data["proration_behavior"],
            }
            try:
                # Like Stripe's proration_date: the confirmation prorates at the second the preview was made,
                # so the invoice is the one the admin saw, not one a few seconds later.
                if "confirm" in request.POST:
                    result = services.subscription_change(
                        subscription_id=subscription.pk,
                        actor=Actor.for_user(request.user),
                        request=request,
                        proration_date=proration_date_parse(request.POST.get("proration_date")),
                        **arguments,
                    )
                    done = f"Plan changed to {result.subscription.plan.code} with {result.subscription.seats} seats"
                    if result.invoice is not None:
                        done += f"; invoice {result.invoice} finalised"
                    messages.success(request, done + ".")
                    return HttpResponseRedirect(reverse("admin:billing_subscription_change", args=[subscription.pk]))
                at = timezone.now()
                preview = selectors.subscription_change_preview(subscription_id=subscription.pk, at=at, **arguments)
                proration_date = at.isoformat()
            except ApplicationError as exc:
                form.add_error(None, exc.message)
        preview_rows = None
        if preview is not None:
            preview_rows = [
                {"line": line, "amount": format_money(line.amount, preview.currency),
                 "tax": format_money(line.tax_amount, preview.currency)}
                for line in preview.lines
            ]  # fmt: skip
        context = {
            **self.admin_site.each_context(request),
            "title": f"Change plan: {subscription}",
            "subscription": subscription,
            "form": form,
            "preview": preview,
            "proration_date": proration_date,
            "preview_rows": preview_rows,
            "totals": None
            if preview is None
            else {
                "subtotal": format_money(preview.subtotal, preview.currency),
                "tax": format_money(preview.tax, preview.currency),
                "total": format_money(preview.total, preview.currency),
            },
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "billing/admin/change_plan.html", context)

    @admin.action(description="Change plan or seats (with an invoice preview)…", permissions=["change"])
    def change_plan(self, request: HttpRequest, queryset: QuerySet[Subscription]) -> HttpResponse | None:
        if queryset.count() != 1:
            messages.error(request, "Select exactly one subscription to change its plan.")
            return None
        subscription = queryset.get()
        return HttpResponseRedirect(reverse("admin:billing_subscription_change_plan", args=[subscription.pk]))

    def _confirm(
        self, request: HttpRequest, queryset: QuerySet[Subscription], action: str, consequence: str
    ) -> TemplateResponse | None:
        """The confirmation page of an action that cannot be taken back from the admin, or None once confirmed."""
        if "confirm" in request.POST:
            return None
        rows = []
        now = timezone.now()
        for subscription in queryset.select_related("customer", "plan").prefetch_related("plan__tiers"):
            note = ""
            if subscription.status == Subscription.Status.CANCELED:
                note = "skipped: it is canceled"
            elif action == "cancel_at_end" and subscription.cancel_at_period_end:
                note = "skipped: it already ends with its period"
            elif action == "renew_now" and subscription.current_period_end > now:
                note = "nothing due: its period has not ended"
            cells = [
                str(subscription.customer),
                str(subscription.plan),
                subscription.get_status_display(),
                f"{subscription.current_period_end:%Y-%m-%d %H:%M} UTC",
                format_money(selectors.subscription_mrr(subscription), subscription.plan.currency),
            ]
            rows.append((subscription, cells, note))
        label = {"cancel_at_end": "Cancel at period end", "renew_now": "Renew elapsed periods now"}[action]
        return confirmation(
            self,
            request,
            action=action,
            title=f"{label}: are you sure?",
            consequence=consequence,
            headers=["customer", "plan", "status", "period end", "MRR"],
            rows=rows,
        )

    @admin.action(description="Cancel at period end…", permissions=["change"])
    def cancel_at_end(self, request: HttpRequest, queryset: QuerySet[Subscription]) -> TemplateResponse | None:
        consequence = (
            "Each subscription ends at the end of its current period: no further invoice, its MRR counts as churn "
            "then, and the organisation is no longer billed. The admin has no undo; start a new subscription "
            "after it ends if the customer stays."
        )
        if (page := self._confirm(request, queryset, "cancel_at_end", consequence)) is not None:
            return page
        done = 0
        for subscription in queryset:
            done += run_one(
                request,
                str(subscription),
                lambda s=subscription: services.subscription_cancel(
                    subscription_id=s.pk, actor=Actor.for_user(request.user), request=request
                ),
            )
        if done:
            messages.success(request, f"{done} subscription(s) will end at the end of their period.")
        return None

    @admin.action(description="Renew elapsed periods now…", permissions=["change"])
    def renew_now(self, request: HttpRequest, queryset: QuerySet[Subscription]) -> TemplateResponse | None:
        consequence = (
            "Every period that has ended is rolled forward now: each new period's invoice is created, numbered and "
            "e-mailed (finalised invoices cannot be deleted, only voided), and subscriptions set to cancel end."
        )
        if (page := self._confirm(request, queryset, "renew_now", consequence)) is not None:
            return page
        invoices = []
        for subscription in queryset:
            run_one(
                request,
                str(subscription),
                lambda s=subscription: invoices.append(
                    services.subscription_renew(
                        subscription_id=s.pk, actor=Actor.for_user(request.user), request=request
                    )
                ),
            )
        made = [str(i) for i in invoices if i is not None]
        messages.info(request, f"Renewed: {', '.join(made)}." if made else "Nothing was due for renewal.")
        return None
