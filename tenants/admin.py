"""Admin for organisations (lifecycle actions, operations, the provisioning dashboard) and service keys.

Every action here is a thin caller of one service in ``tenants.services`` / ``tenants.keys``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from ghostcrm.audit.services import Actor
from ghostcrm.core.admin_actions import ConfirmedAction, confirmed_action
from ghostcrm.core.admin_base import AuditedModelAdmin, ReadOnlyAdminMixin, truncated
from ghostcrm.core.errors import ApplicationError
from ghostcrm.organizations.models import Organization
from tenants import keys, selectors, service_key_pages, services
from tenants.admin_display import (
    LIFECYCLE_CONSEQUENCES,
    LIFECYCLE_DONE,
    LIFECYCLE_LABELS,
    format_duration,
    status_badge,
    time_to_active_chart,
)
from tenants.crm.selectors import crm_summary
from tenants.models import Operation, ProvisioningDashboard, ServiceKey

Status = Organization.Status
SERVICE_FIELDS = {"name": "name", "admin_email": "admin_email", "plan": "plan_code"}
# Statuses in which the client's schema holds its CRM (the support page reads it).
CRM_STATUSES = frozenset({Status.ACTIVE, Status.SUSPENDED})
ERROR_CHARS = 80  # an operation's error in the list; the whole text is its tooltip and on its page


def _lifecycle_buttons(organization: Organization) -> list[dict[str, Any]]:
    """The buttons on an organisation's page: the lifecycle actions its status allows."""
    return [
        {"action": f"{verb}_selected", "label": LIFECYCLE_LABELS[verb], "danger": verb == "deprovision"}
        for verb in services.lifecycle_actions_for(organization.status)
    ]


class PlanChoiceField(forms.ChoiceField):
    """A list of the active billing plans. The service decides whether a posted code is allowed (a plan may have
    been switched off since the form was shown), so its sentence naming the plans in use is the one error shown."""

    def validate(self, value: Any) -> None:
        forms.Field.validate(self, value)


class OrganizationAddForm(forms.ModelForm):
    """New organisations: name, admin e-mail, plan. The slug and schema name follow from the name."""

    plan_code = PlanChoiceField(label="Plan", required=False, help_text="An active billing plan, or no plan.")
    existing: Organization | None = None

    class Meta:
        model = Organization
        fields = ("name", "admin_email", "plan_code")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Read when the form is built, so a plan added or switched off in billing shows up at once.
        self.fields["plan_code"].choices = [("", "No plan"), *selectors.active_plan_choices()]  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors:
            return data
        try:
            # What the API would answer for the same request: a new organisation, the existing one (the same
            # client asked again), or a refusal.
            self.existing = services.organization_request_preview(
                name=data.get("name", ""), admin_email=data.get("admin_email", ""), plan_code=data.get("plan_code", "")
            )
        except ApplicationError as exc:
            fields = exc.extra.get("fields") or {"name": [exc.message]}
            for field, errors in fields.items():
                for error in errors:
                    self.add_error(SERVICE_FIELDS.get(field), error)
        return data


class OperationInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Operation
    extra = 0
    can_delete = False
    max_num = 0
    ordering = ("started_at", "id")
    fields = ("step", "attempt", "from_status", "to_status", "outcome", "started_at", "duration", "error", "job_id")
    readonly_fields = fields
    show_change_link = False

    @admin.display(description="duration")
    def duration(self, obj: Operation) -> str:
        return "-" if obj.duration_ms is None else f"{obj.duration_ms} ms"


@admin.register(Organization)
class OrganizationAdmin(AuditedModelAdmin):
    # Chosen to fit a 1366 px screen with the sidebar: the admin e-mail is on the organisation's page.
    list_display = ("name", "slug", "status_badge", "plan", "created_at", "time_to_active")
    list_filter = ("status", "plan_code", "created_at")
    search_fields = ("name", "slug", "admin_email", "schema_name", "=id")
    date_hierarchy = "created_at"
    inlines = (OperationInline,)
    actions = ("retry_selected", "suspend_selected", "resume_selected", "deprovision_selected")
    readonly_fields = (
        "id",
        "name",
        "slug",
        "schema_name",
        "admin_email",
        "plan_code",
        "status_badge",
        "last_error",
        "created_at",
        "updated_at",
        "status_changed_at",
        "activated_at",
        "time_to_active",
        "invited_at",
        "deleted_at",
        "purge_after",
        "export_path",
    )
    fieldsets = (
        (None, {"fields": ("id", "name", "slug", "schema_name", "admin_email", "plan_code")}),
        (
            "Lifecycle",
            {"fields": ("status_badge", "last_error", "status_changed_at", "activated_at", "time_to_active")},
        ),
        ("Dates", {"fields": ("created_at", "updated_at", "invited_at", "deleted_at", "purge_after", "export_path")}),
    )

    # --- list and forms ---
    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: Organization) -> str:
        return status_badge(obj.status)

    @admin.display(description="plan")
    def plan(self, obj: Organization) -> str:
        """The live subscription's plan (from billing), else the plan chosen at sign-up."""
        return getattr(obj, "live_plan", "") or obj.plan_code or "-"

    @admin.display(description="time to active")
    def time_to_active(self, obj: Organization) -> str:
        if obj.activated_at is None or obj.created_at is None:
            return "-"
        return format_duration((obj.activated_at - obj.created_at).total_seconds())

    def get_changelist_instance(self, request: HttpRequest) -> Any:
        changelist = super().get_changelist_instance(request)
        page = list(changelist.result_list)  # evaluated once; the template iterates the same objects
        live = selectors.live_plan_names(organization_ids=[organization.pk for organization in page])
        for organization in page:
            organization.live_plan = live.get(organization.pk, "")  # type: ignore[attr-defined]
        return changelist

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        # Nothing here is edited by hand: no Save buttons; the status' actions are buttons at the top.
        organization = self.get_object(request, object_id)
        context = {
            **(extra_context or {}),
            "show_save": False,
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
            "lifecycle_buttons": _lifecycle_buttons(organization) if organization is not None else [],
            "crm_url": (
                reverse("admin:tenants_organization_crm", kwargs={"organization_id": organization.pk})
                if organization is not None and organization.status in CRM_STATUSES
                else ""
            ),
        }
        return super().change_view(request, object_id, form_url, extra_context=context)

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = OrganizationAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ((None, {"fields": ("name", "admin_email", "plan_code")}),)
        return self.fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return () if obj is None else self.readonly_fields

    def get_inlines(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.inlines if obj is not None else ()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # organisations leave through deprovisioning, never a bare delete

    def has_lifecycle_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("organizations.lifecycle_organization"))

    def save_model(self, request: HttpRequest, obj: Organization, form: Any, change: bool) -> None:
        if change:
            return  # nothing on the change form is editable
        created = services.organization_request(
            name=obj.name,
            admin_email=obj.admin_email,
            plan_code=obj.plan_code,
            actor=Actor.for_user(request.user),
            request=request,
        )
        obj.pk = created.pk
        obj._state.adding = False
        obj.refresh_from_db()
        request._organization_existed = getattr(form, "existing", None) is not None  # type: ignore[attr-defined]

    def log_addition(self, request: HttpRequest, obj: models.Model, message: Any) -> Any:
        # The service recorded the request (organization.request, with this user and request): one audit event
        # per add, and none when the same client was asked for again and the existing organisation returned.
        if getattr(request, "_organization_existed", False):
            return None
        return admin.ModelAdmin.log_addition(self, request, obj, message)

    def response_add(self, request: HttpRequest, obj: Organization, post_url_continue: str | None = None) -> Any:
        if getattr(request, "_organization_existed", False):
            self.message_user(
                request,
                f"{obj.name} was already requested for {obj.admin_email} ({obj.status}); here it is.",
                messages.INFO,
            )
            return HttpResponseRedirect(reverse("admin:organizations_organization_change", args=[obj.pk]))
        return super().response_add(request, obj, post_url_continue)

    # --- lifecycle actions, each with a confirmation page ---
    def _lifecycle(self, request: HttpRequest, queryset: QuerySet[Organization], *, verb: str) -> HttpResponse | None:
        actor = Actor.for_user(request.user)

        def perform(organization: Organization, reason: str) -> None:
            services.LIFECYCLE_ACTIONS[verb](
                organization_id=organization.pk, actor=actor, reason=reason, request=request
            )

        action = ConfirmedAction(
            name=f"{verb}_selected",
            verb=verb,
            consequence=LIFECYCLE_CONSEQUENCES[verb],
            headers=("organisation", "slug", "status"),
            cells=lambda org: (org.name, org.slug, org.get_status_display()),
            note=lambda org: "" if verb in services.lifecycle_actions_for(org.status) else f"it is {org.status}",
            perform=perform,
            done=LIFECYCLE_DONE[verb],
            default_reason=f"{verb} from the admin",
            danger=verb == "deprovision",
        )
        return confirmed_action(self, request, queryset, action)

    @admin.action(description="Retry provisioning of selected organisations", permissions=["lifecycle"])
    def retry_selected(self, request: HttpRequest, queryset: QuerySet[Organization]) -> HttpResponse | None:
        return self._lifecycle(request, queryset, verb="retry")

    @admin.action(description="Suspend selected organisations", permissions=["lifecycle"])
    def suspend_selected(self, request: HttpRequest, queryset: QuerySet[Organization]) -> HttpResponse | None:
        return self._lifecycle(request, queryset, verb="suspend")

    @admin.action(description="Resume selected organisations", permissions=["lifecycle"])
    def resume_selected(self, request: HttpRequest, queryset: QuerySet[Organization]) -> HttpResponse | None:
        return self._lifecycle(request, queryset, verb="resume")

    @admin.action(description="Deprovision selected organisations (export, then delete)", permissions=["lifecycle"])
    def deprovision_selected(self, request: HttpRequest, queryset: QuerySet[Organization]) -> HttpResponse | None:
        return self._lifecycle(request, queryset, verb="deprovision")

    # --- dashboard ---
    def get_urls(self) -> list[URLPattern]:
        extra = [
            path("dashboard/", self.admin_site.admin_view(self.dashboard_view), name="tenants_provisioning_dashboard"),
            path(
                "<uuid:organization_id>/crm/",
                self.admin_site.admin_view(self.crm_view),
                name="tenants_organization_crm",
            ),
            path(
                "<uuid:organization_id>/retry/",
                self.admin_site.admin_view(require_POST(self.retry_view)),
                name="tenants_organization_retry",
            ),
        ]
        return extra + super().get_urls()  # type: ignore[return-value]

    def dashboard_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            return HttpResponseRedirect(reverse("admin:index"))
        stats = selectors.provisioning_dashboard()
        context = {
            **self.admin_site.each_context(request),
            "title": "Provisioning dashboard",
            "opts": self.model._meta,
            "stats": stats,
            "counts": [(status_badge(status), count) for status, count in stats.counts.items()],
            "p50": format_duration(stats.p50_seconds),
            "p95": format_duration(stats.p95_seconds),
            "chart": time_to_active_chart(stats.hourly),
            "failures": [
                {"organization": org, "badge": status_badge(org.status), "retry_url": _retry_url(org)}
                for org in stats.recent_failures
            ],
            "can_retry": self.has_lifecycle_permission(request),
        }
        return TemplateResponse(request, "tenants/dashboard.html", context)

    def crm_view(self, request: HttpRequest, organization_id: Any) -> HttpResponse:
        """Support: the client's CRM users and record counts, read through the read-only mirrors."""
        organization = get_object_or_404(Organization, pk=organization_id)
        if not self.has_view_permission(request, organization):
            return HttpResponseRedirect(reverse("admin:index"))
        context = {
            **self.admin_site.each_context(request),
            "title": f"CRM of {organization.name}",
            "opts": self.model._meta,
            "organization": organization,
            "crm": crm_summary(schema=organization.schema_name) if organization.status in CRM_STATUSES else None,
        }
        return TemplateResponse(request, "tenants/crm.html", context)

    def retry_view(self, request: HttpRequest, organization_id: Any) -> HttpResponse:
        organization = get_object_or_404(Organization, pk=organization_id)
        if not self.has_lifecycle_permission(request):
            self.message_user(request, "You may not retry provisioning.", messages.ERROR)
        else:
            try:
                services.organization_retry(
                    organization_id=organization.pk,
                    actor=Actor.for_user(request.user),
                    reason="retry from the provisioning dashboard",
                    request=request,
                )
                self.message_user(request, f"Provisioning of {organization.name} starts again.", messages.SUCCESS)
            except ApplicationError as exc:
                self.message_user(request, exc.message, messages.ERROR)
        return HttpResponseRedirect(request.POST.get("next") or reverse("admin:tenants_provisioning_dashboard"))


def _retry_url(organization: Organization) -> str:
    return reverse("admin:tenants_organization_retry", kwargs={"organization_id": organization.pk})


@admin.register(ProvisioningDashboard)
class ProvisioningDashboardAdmin(admin.ModelAdmin):
    """An entry on the admin index that opens the provisioning dashboard."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_active and request.user.is_staff)  # type: ignore[union-attr]

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        return HttpResponseRedirect(reverse("admin:tenants_provisioning_dashboard"))


@admin.register(Operation)
class OperationAdmin(ReadOnlyAdminMixin, AuditedModelAdmin):
    # Chosen to fit a 1366 px screen: the job id is on the operation's page, the error is cut with a tooltip.
    list_display = ("organization", "step", "attempt", "outcome", "started_at", "duration_ms", "short_error")
    list_filter = ("outcome", "step", "started_at")
    search_fields = ("organization__name", "organization__slug", "job_id", "error")
    list_select_related = ("organization",)

    @admin.display(description="error")
    def short_error(self, obj: Operation) -> str:
        return truncated(obj.error, ERROR_CHARS)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        # A record of what ran: its organisation's actions are on the page, there is nothing to save.
        operation = self.get_object(request, object_id)
        context = {**(extra_context or {}), "show_save": False, "show_save_and_continue": False}
        if operation is not None:
            context["organization"] = operation.organization
            context["lifecycle_buttons"] = _lifecycle_buttons(operation.organization)
        return super().change_view(request, object_id, form_url, extra_context=context)


class ServiceKeyForm(forms.ModelForm):
    # Labels carry the scope names the API docs and errors use; not required here, so an empty choice gets the
    # model's one sentence ("Give at least one scope: ...") rather than that plus "This field is required."
    scopes = forms.MultipleChoiceField(
        choices=[(value, f"{label} ({value})") for value, label in ServiceKey.Scope.choices],
        widget=forms.CheckboxSelectMultiple,
        required=False,
    )

    class Meta:
        model = ServiceKey
        fields = ("name", "scopes", "expires_at")

    def clean_expires_at(self) -> dt.datetime | None:
        value: dt.datetime | None = self.cleaned_data.get("expires_at")
        if value is not None and value <= timezone.now():
            raise forms.ValidationError("The expiry must be in the future.")
        return value

    def _post_clean(self) -> None:
        # The model stores scopes as space-separated text; the form offers checkboxes.
        scopes = self.cleaned_data.get("scopes")
        if isinstance(scopes, list):
            self.cleaned_data["scopes"] = " ".join(scopes)
        super()._post_clean()  # type: ignore[misc]


@admin.register(ServiceKey)
class ServiceKeyAdmin(AuditedModelAdmin):
    form = ServiceKeyForm
    list_display = ("name", "masked", "scopes", "expires_at", "revoked_at", "last_used_at", "created_at", "created_by")
    list_filter = ("revoked_at", "expires_at")
    search_fields = ("name", "prefix")
    list_select_related = ("created_by",)  # shown per row: one join, not one query per key
    actions = ("revoke_selected",)
    readonly_fields = ("masked", "scopes", "expires_at", "revoked_at", "last_used_at", "created_at", "created_by")

    @admin.display(description="key")
    def masked(self, obj: ServiceKey) -> str:
        return f"gcrm_{obj.prefix}_…"

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return () if obj is None else ("name", *self.readonly_fields)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ("name", "scopes", "expires_at") if obj is None else ("name", *self.readonly_fields)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # revoke instead: the audit log keeps pointing at the key

    # Keys open the API to machines: only super admins create or revoke them.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_superuser)  # type: ignore[union-attr]

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_superuser)  # type: ignore[union-attr]

    def save_model(self, request: HttpRequest, obj: ServiceKey, form: Any, change: bool) -> None:
        if change:
            return
        key, raw = keys.service_key_create(
            name=obj.name,
            scopes=obj.scopes.split(),
            expires_at=obj.expires_at,
            created_by=request.user,
            actor=Actor.for_user(request.user),
            request=request,
        )
        obj.pk = key.pk
        obj._state.adding = False
        obj.refresh_from_db()
        request._service_key_raw = raw  # type: ignore[attr-defined]

    def get_urls(self) -> list[URLPattern]:
        return [*service_key_pages.created_key_urls(self), *super().get_urls()]

    def response_add(self, request: HttpRequest, obj: ServiceKey, post_url_continue: str | None = None) -> HttpResponse:
        raw = getattr(request, "_service_key_raw", None)
        if raw is None:
            return super().response_add(request, obj, post_url_continue)
        # Post/redirect/get: a reload of the page showing the key creates no second key (tenants/service_key_pages.py).
        return service_key_pages.created_key_redirect(request, obj, raw)

    @admin.action(description="Revoke selected keys", permissions=["revoke"])
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[ServiceKey]) -> None:
        for key in queryset:
            keys.service_key_revoke(key_id=key.pk, actor=Actor.for_user(request.user), request=request)
        self.message_user(request, f"Revoked {queryset.count()} key(s).", messages.SUCCESS)
