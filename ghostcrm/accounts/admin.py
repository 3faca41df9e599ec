from __future__ import annotations

from typing import Any

from axes.admin import AccessAttemptAdmin, AccessFailureLogAdmin, AccessLogAdmin
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django import forms
from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminPasswordChangeForm as DjangoAdminPasswordChangeForm
from django.contrib.auth.forms import UserChangeForm as DjangoUserChangeForm
from django.contrib.auth.forms import UserCreationForm as DjangoUserCreationForm
from django.contrib.auth.models import Group
from django.db.models import OuterRef, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from ghostcrm.accounts import selectors
from ghostcrm.accounts.forms import ServicePasswordMixin
from ghostcrm.accounts.models import Invitation, InvitationRole, User, UserSession
from ghostcrm.accounts.services import invitations, mfa, sessions, signin
from ghostcrm.accounts.services.lockout import user_unlock
from ghostcrm.audit.services import Actor
from ghostcrm.core.admin_base import AuditedModelAdmin, ReadOnlyAdminMixin
from ghostcrm.core.errors import ApplicationError
from ghostcrm.organizations.models import Organization


def _super_admin_only(request: HttpRequest) -> bool:
    return bool(request.user.is_active and request.user.is_superuser)


class UserSessionInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = UserSession
    fields = ("ip_address", "user_agent", "created_at", "last_seen_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name_plural = "active sessions (end them with the action on the user list or in Sessions)"

    def get_queryset(self, request: HttpRequest) -> QuerySet[UserSession]:
        return super().get_queryset(request).filter(ended_at__isnull=True)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _super_admin_only(request)


def _require_recent_auth(modeladmin: admin.ModelAdmin, request: HttpRequest) -> bool:
    if signin.reauth_is_recent(request=request):
        return True
    url = reverse("accounts:reauth") + "?next=" + request.get_full_path()
    modeladmin.message_user(
        request,
        format_html('Confirm your password first (<a href="{}">confirm</a>), then run the action again.', url),
        messages.WARNING,
    )
    return False


class _EmailNormalisingForm(forms.ModelForm):
    """E-mail addresses are stored lower-case (``User.save``); normalise before the uniqueness check, so a
    differently-cased duplicate is a form error rather than a database error."""

    def clean_email(self) -> str:
        return (self.cleaned_data.get("email") or "").strip().lower()


class UserCreationForm(_EmailNormalisingForm, DjangoUserCreationForm):
    class Meta:
        model = User
        fields = ("email", "first_name", "last_name", "role")


class UserChangeForm(_EmailNormalisingForm, DjangoUserChangeForm):
    class Meta:
        model = User
        fields = ("email", "password", "first_name", "last_name", "role", "is_active", "is_staff")


class AdminPasswordChangeForm(ServicePasswordMixin, DjangoAdminPasswordChangeForm):
    """A super admin setting someone's password: through ``password_change`` (history, sessions, audit)."""


@admin.register(User)
class UserAdmin(AuditedModelAdmin, DjangoUserAdmin):
    form = UserChangeForm
    add_form = UserCreationForm
    change_password_form = AdminPasswordChangeForm
    list_display = ("email", "first_name", "last_name", "role", "is_active", "mfa", "last_login", "date_joined")
    inlines = (UserSessionInline,)
    actions = ("end_all_sessions", "reset_mfa", "unlock")
    list_filter = ("role", "is_active")
    search_fields = ("email", "first_name", "last_name")
    ordering = ("email",)
    readonly_fields = ("last_login", "date_joined", "updated_at")
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Person", {"fields": ("first_name", "last_name")}),
        ("Access", {"fields": ("role", "is_active", "is_staff")}),
        ("Dates", {"fields": ("last_login", "date_joined", "updated_at")}),
    )
    add_fieldsets = (
        (
            None,
            {"classes": ("wide",), "fields": ("email", "first_name", "last_name", "role", "password1", "password2")},
        ),
    )
    filter_horizontal = ()

    def get_queryset(self, request: HttpRequest) -> QuerySet[User]:
        return selectors.users_with_mfa_flag(super().get_queryset(request))  # one query for the list's MFA column

    @admin.display(description="MFA", boolean=True)
    def mfa(self, obj: User) -> bool:
        flag = getattr(obj, "has_mfa", None)
        return selectors.user_has_mfa(user=obj) if flag is None else bool(flag)

    def get_inlines(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.inlines if obj is not None else ()  # a user being added has no sessions

    def has_super_admin_permission(self, request: HttpRequest) -> bool:
        return _super_admin_only(request)

    @admin.action(description="End all sessions of the selected users", permissions=["super_admin"])
    def end_all_sessions(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        total = sum(
            sessions.user_sessions_revoke(user=user, actor=Actor.for_user(request.user), request=request)
            for user in queryset
        )
        self.message_user(request, f"Ended {total} session(s).", messages.SUCCESS)

    @admin.action(
        description="Reset MFA (remove authenticator and backup codes; re-enrol at next sign-in)",
        permissions=["super_admin"],
    )
    def reset_mfa(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        if not _require_recent_auth(self, request):
            return
        for user in queryset:
            mfa.mfa_reset(user=user, actor=Actor.for_user(request.user), request=request, reason="Reset by an admin.")
        self.message_user(request, f"MFA reset for {queryset.count()} user(s); their sessions ended.", messages.SUCCESS)

    @admin.action(description="Unlock (clear failed sign-in attempts)", permissions=["super_admin"])
    def unlock(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        cleared = sum(
            user_unlock(email=user.email, actor=Actor.for_user(request.user), request=request) for user in queryset
        )
        self.message_user(request, f"Unlocked; {cleared} failed-attempt record(s) cleared.", messages.SUCCESS)


admin.site.unregister(Group)


@admin.register(Group)
class GroupAdmin(AuditedModelAdmin, DjangoGroupAdmin):
    pass


@admin.register(UserSession)
class UserSessionAdmin(ReadOnlyAdminMixin, AuditedModelAdmin):
    list_display = ("user", "ip_address", "short_user_agent", "created_at", "last_seen_at", "ended_at", "end_reason")
    list_filter = ("end_reason", ("ended_at", admin.EmptyFieldListFilter), "created_at")
    search_fields = ("user__email", "=ip_address", "user_agent")
    exclude = ("session_key_hash",)
    actions = ("end_sessions",)
    list_select_related = ("user",)

    @admin.display(description="user agent")
    def short_user_agent(self, obj: UserSession) -> str:
        return obj.user_agent[:80]

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _super_admin_only(request)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return _super_admin_only(request)

    def has_end_permission(self, request: HttpRequest) -> bool:
        return _super_admin_only(request)

    @admin.action(description="End the selected sessions", permissions=["end"])
    def end_sessions(self, request: HttpRequest, queryset: QuerySet[UserSession]) -> None:
        ended = 0
        for session in queryset.select_related("user").filter(ended_at__isnull=True):
            ended += sessions.user_session_end(
                session=session,
                reason=UserSession.EndReason.REVOKED,
                actor=Actor.for_user(request.user),
                request=request,
            )
        self.message_user(request, f"Ended {ended} session(s).", messages.SUCCESS)


# The roles an invitation grants, least privileged first: the form lists them in this order and preselects
# the first, so a hurried "Send" never grants more than one organisation's CRM.
ROLES_LEAST_PRIVILEGED_FIRST = (
    InvitationRole.TENANT_ADMIN,
    InvitationRole.SUPPORT,
    InvitationRole.BILLING,
    InvitationRole.SUPER_ADMIN,
)


class InvitationForm(forms.Form):
    email = forms.EmailField(label="E-mail address")
    role = forms.ChoiceField(
        choices=[(role.value, role.label) for role in ROLES_LEAST_PRIVILEGED_FIRST],
        initial=ROLES_LEAST_PRIVILEGED_FIRST[0].value,
    )
    organization: forms.ModelChoiceField = forms.ModelChoiceField(
        label="Organisation",
        queryset=None,
        required=False,
        help_text="Only for a Tenant CRM admin: the organisation it administers.",
    )
    confirm_super_admin = forms.BooleanField(
        label="Grant Super admin",
        required=False,
        help_text="Only for Super admin: tick to confirm that this person gets full control of the control "
        "plane (every organisation, account, service key and setting).",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["organization"].queryset = Organization.objects.order_by("name")  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("role") == InvitationRole.SUPER_ADMIN and not data.get("confirm_super_admin"):
            self.add_error(
                "confirm_super_admin",
                "Super admin gives full control of the control plane: tick this box to confirm, or choose a "
                "smaller role.",
            )
        return data

    def add_service_errors(self, exc: ApplicationError) -> None:
        """Every field error the service reported, on its field (all at once); the sentence when it has none."""
        fields = exc.extra.get("fields", {})
        for name, errors in fields.items():
            for error in errors:
                self.add_error(name if name in self.fields else None, error)
        if not fields:
            self.add_error(None, exc.message)


@admin.register(Invitation)
class InvitationAdmin(AuditedModelAdmin):
    list_display = ("email", "role", "organization", "state", "inviter", "created_at", "expires_at", "send_count")
    list_filter = ("state", "role", "created_at")
    search_fields = ("email", "=organization_id", "organization_name")  # organization_name: see get_queryset
    actions = ("resend", "revoke")
    list_select_related = ("inviter",)
    readonly_fields = (
        "email", "role", "organization", "inviter", "state", "expires_at", "created_at", "sent_at", "send_count",
        "accepted_at", "accepted_user", "revoked_at", "expired_at",
    )  # fmt: skip
    exclude = ("token_hash", "context", "organization_id")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Invitation]:
        # organization_id is a bare UUID (no foreign key), so select_related cannot follow it; a correlated
        # subquery reads the name in the list's own query on every supported database.
        name = Organization.objects.filter(pk=OuterRef("organization_id")).values("name")[:1]
        return super().get_queryset(request).annotate(organization_name=Subquery(name))

    @admin.display(description="organisation", ordering="organization_name")
    def organization(self, obj: Invitation) -> SafeString | str | None:
        if obj.organization_id is None:
            return None  # a control-plane invitation: the admin's empty-value dash
        if hasattr(obj, "organization_name"):
            name = obj.organization_name
        else:  # a row not read through get_queryset
            name = Organization.objects.filter(pk=obj.organization_id).values_list("name", flat=True).first()
        if name is None:
            return f"{obj.organization_id} (no such organisation)"
        url = reverse("admin:organizations_organization_change", args=[obj.organization_id])
        return format_html('<a href="{}">{}</a>', url, name)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # state changes go through the actions (resend, revoke), never through field edits

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if not self.has_add_permission(request):
            return HttpResponseRedirect(reverse("admin:accounts_invitation_changelist"))
        form = InvitationForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            organization = form.cleaned_data["organization"]
            try:
                invitation = invitations.invitation_create(
                    email=form.cleaned_data["email"],
                    role=form.cleaned_data["role"],
                    inviter=request.user,  # type: ignore[arg-type]
                    organization_id=organization.pk if organization else None,
                    actor=Actor.for_user(request.user),
                )
            except ApplicationError as exc:
                form.add_service_errors(exc)
            else:
                self.message_user(request, f"Invitation sent to {invitation.email}.", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:accounts_invitation_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": "Invite someone",
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "accounts/admin/invite.html", context)

    @admin.action(description="Resend (new link; the old one stops working)", permissions=["add"])
    def resend(self, request: HttpRequest, queryset: QuerySet[Invitation]) -> None:
        self._each(
            request,
            queryset,
            "resent",
            lambda inv: invitations.invitation_resend(
                invitation_id=inv.pk,
                inviter=request.user,  # type: ignore[arg-type]
                actor=Actor.for_user(request.user),
            ),
        )

    @admin.action(description="Revoke", permissions=["add"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[Invitation]) -> None:
        self._each(
            request,
            queryset,
            "revoked",
            lambda inv: invitations.invitation_revoke(invitation_id=inv.pk, actor=Actor.for_user(request.user)),
        )

    def _each(self, request: HttpRequest, queryset: QuerySet[Invitation], verb: str, call: Any) -> None:
        done, errors = 0, []
        for invitation in queryset:
            try:
                call(invitation)
                done += 1
            except ApplicationError as exc:
                errors.append(exc.message)
        if done:
            self.message_user(request, f"{done} invitation(s) {verb}.", messages.SUCCESS)
        for error in errors:
            self.message_user(request, error, messages.ERROR)


# --- Third-party admins, re-registered audited ------------------------------------------------------------

for _model in (AccessAttempt, AccessLog, AccessFailureLog, TOTPDevice, StaticDevice):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)


@admin.register(AccessAttempt)
class AuditedAccessAttemptAdmin(AuditedModelAdmin, AccessAttemptAdmin):
    """Failed sign-ins per (username, address). Deleting one, or the unlock action, lifts the lock."""

    actions = ("unlock_selected",)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _super_admin_only(request)

    def has_super_admin_permission(self, request: HttpRequest) -> bool:
        return _super_admin_only(request)

    @admin.action(description="Unlock (clear these failed attempts)", permissions=["super_admin"])
    def unlock_selected(self, request: HttpRequest, queryset: QuerySet[AccessAttempt]) -> None:
        pairs = {(a.username or "", a.ip_address) for a in queryset}
        cleared = sum(
            user_unlock(email=u, ip_address=ip, actor=Actor.for_user(request.user), request=request)
            for u, ip in pairs
            if u
        )
        self.message_user(request, f"Cleared {cleared} failed-attempt record(s).", messages.SUCCESS)


@admin.register(AccessLog)
class AuditedAccessLogAdmin(ReadOnlyAdminMixin, AuditedModelAdmin, AccessLogAdmin):
    pass


@admin.register(AccessFailureLog)
class AuditedAccessFailureLogAdmin(ReadOnlyAdminMixin, AuditedModelAdmin, AccessFailureLogAdmin):
    pass


class _DeviceAdmin(AuditedModelAdmin):
    """Devices are enrolled by their owner only; an admin can view them or delete them (an MFA reset)."""

    list_display = ("user", "name", "confirmed", "created_at", "last_used_at")
    list_filter = ("confirmed",)
    search_fields = ("user__email", "name")
    list_select_related = ("user",)
    fields = ("user", "name", "confirmed", "created_at", "last_used_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _super_admin_only(request)

    @admin.action(description="Delete selected devices (an MFA reset)", permissions=["delete"])
    def delete_selected(self, request: HttpRequest, queryset: QuerySet[Any]) -> HttpResponse | None:
        # Django's bulk delete, behind the same recent-password check as the delete page and "Reset MFA".
        if not _require_recent_auth(self, request):
            return None
        return django_delete_selected(self, request, queryset)

    actions = ("delete_selected",)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        mfa.mfa_devices_delete(devices=[obj], actor=Actor.for_user(request.user), request=request)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        mfa.mfa_devices_delete(
            devices=queryset.select_related("user"), actor=Actor.for_user(request.user), request=request
        )


@admin.register(TOTPDevice)
class TOTPDeviceAdmin(_DeviceAdmin):
    pass


@admin.register(StaticDevice)
class StaticDeviceAdmin(_DeviceAdmin):
    pass
