"""Admin for the server registry: add and change run the same checks as the command; the password is never
shown back; "check now" and open/drain/close (with confirmation) call the same services."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from ghostcrm.audit.services import Actor
from ghostcrm.core.admin_base import AuditedModelAdmin
from ghostcrm.core.errors import ApplicationError
from tenants.fleet import selectors, services
from tenants.fleet.connection import parse_server_url
from tenants.fleet.models import PRIMARY_SERVER_NAME, TenantServer
from tenants.fleet.services import STATE_VERBS, ServerCheck

VERB_STATES = {verb: state for state, verb in STATE_VERBS.items()}


class TenantServerForm(forms.ModelForm):
    """The URL is shown without its password; a password typed in (or inside the URL) replaces the stored one,
    a blank one keeps it. A new address is checked while the form validates, so a failure shows on the page."""

    # Not the model's field name: the model's password is not editable, the form takes a new one.
    new_password = forms.CharField(
        label="Password",
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Leave blank to keep the stored password (or write it inside the URL).",
    )

    class Meta:
        model = TenantServer
        fields = ["name", "url", "capacity", "notes"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.check_result: ServerCheck | None = None

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if self.errors or "url" not in data:
            return data
        stored = self.instance.password if self.instance.pk else None
        try:
            address = parse_server_url(data["url"], password=data.get("new_password") or None)
            if address.password is None:
                address = parse_server_url(data["url"], password=stored)
            if not self.instance.pk or address.url != self.instance.url or address.password != stored:
                self.check_result = services.server_check(address=address)
        except ApplicationError as exc:
            raise forms.ValidationError(exc.message) from None
        data["url"], data["new_password"] = address.url, address.password
        return data


@admin.register(TenantServer)
class TenantServerAdmin(AuditedModelAdmin):
    form = TenantServerForm
    list_display = ["name", "state", "capacity", "clients", "url", "state_changed_at"]
    list_filter = ["state"]
    search_fields = ["name", "url", "notes"]
    readonly_fields = ["state", "state_changed_at", "created_at", "updated_at"]
    actions = ["check_selected", "open_selected", "drain_selected", "close_selected"]

    def get_readonly_fields(self, request: HttpRequest, obj: TenantServer | None = None) -> list[str]:
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None:
            fields.append("name")
            if obj.name == PRIMARY_SERVER_NAME:  # its URL follows TENANT_DATABASE_URL
                fields.append("url")
        return fields

    def get_fields(self, request: HttpRequest, obj: TenantServer | None = None) -> Any:
        fields = ["name", "url", "new_password", "capacity", "notes", *self.readonly_fields]
        if obj is not None and obj.name == PRIMARY_SERVER_NAME:
            fields.remove("new_password")
        return fields

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Closing a server takes it out of placement; removing rows waits for moves (see docs/fleet.md).
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[TenantServer]:
        return selectors.server_list()

    @admin.display(description="clients")
    def clients(self, obj: TenantServer) -> int:
        return selectors.server_client_counts().get(obj.name, 0)

    def save_model(self, request: HttpRequest, obj: TenantServer, form: Any, change: bool) -> None:
        data, actor = form.cleaned_data, Actor.for_user(request.user)
        if change:
            saved = services.server_change(
                server_id=obj.pk,
                url=data.get("url", obj.url),
                password=data.get("new_password"),
                capacity=data["capacity"],
                notes=data["notes"],
                checked=form.check_result,
                actor=actor,
                request=request,
            )
            warning = form.check_result.warning if form.check_result else ""
        else:
            saved, check = services.server_add(
                name=data["name"],
                url=data["url"],
                password=data.get("new_password"),
                capacity=data["capacity"],
                notes=data["notes"],
                checked=form.check_result,
                actor=actor,
                request=request,
            )
            warning = check.warning
        obj.pk = saved.pk  # the admin goes on with `obj` (its messages, its redirect)
        obj.refresh_from_db()
        if warning:
            self.message_user(request, warning, messages.WARNING)

    # --- actions ---
    @admin.action(description="Check selected servers now")
    def check_selected(self, request: HttpRequest, queryset: QuerySet[TenantServer]) -> None:
        for server in queryset:
            try:
                check = services.server_check_saved(server=server)
            except ApplicationError as exc:
                self.message_user(request, f"{server.name}: {exc.message}", messages.ERROR)
                continue
            self.message_user(
                request,
                f"{server.name}: answers, PostgreSQL {check.probe.version}, the login may create roles and schemas.",
                messages.SUCCESS,
            )
            if check.warning:
                self.message_user(request, f"{server.name}: {check.warning}", messages.WARNING)

    def _state(self, request: HttpRequest, queryset: QuerySet[TenantServer], *, verb: str) -> HttpResponse | None:
        if request.POST.get("confirm") != "yes":
            context = {
                **self.admin_site.each_context(request),
                "title": f"{verb.capitalize()} {queryset.count()} server(s)?",
                "servers": list(queryset),
                "action": f"{verb}_selected",
                "verb": verb,
                "opts": self.model._meta,
                "action_checkbox_name": ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(request, "fleet/admin/confirm_state.html", context)
        reason = request.POST.get("reason", "").strip()[:1000] or f"{verb} from the admin"
        for server in queryset:
            _, changed = services.server_state_set(
                name=server.name,
                state=VERB_STATES[verb],
                actor=Actor.for_user(request.user),
                reason=reason,
                request=request,
            )
            said = "is now" if changed else "was already"
            self.message_user(request, f"Server {server.name} {said} {VERB_STATES[verb]}.", messages.SUCCESS)
        return None

    @admin.action(description="Open selected servers (take new clients)", permissions=["state"])
    def open_selected(self, request: HttpRequest, queryset: QuerySet[TenantServer]) -> HttpResponse | None:
        return self._state(request, queryset, verb="open")

    @admin.action(description="Drain selected servers (no new clients; to be emptied)", permissions=["state"])
    def drain_selected(self, request: HttpRequest, queryset: QuerySet[TenantServer]) -> HttpResponse | None:
        return self._state(request, queryset, verb="drain")

    @admin.action(description="Close selected servers (no new clients)", permissions=["state"])
    def close_selected(self, request: HttpRequest, queryset: QuerySet[TenantServer]) -> HttpResponse | None:
        return self._state(request, queryset, verb="close")

    def has_state_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("fleet.state_tenantserver")
