from __future__ import annotations

from typing import Any, ClassVar

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models
from django.utils import timezone


class Role(models.TextChoices):
    SUPER_ADMIN = "super_admin", "Super admin"
    SUPPORT = "support", "Support"
    BILLING = "billing", "Billing"


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def _create_user(self, email: str, password: str | None, **extra: Any) -> User:
        if not email:
            raise ValueError("An e-mail address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.full_clean(exclude=["password"])
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra: Any) -> User:
        extra.setdefault("role", Role.SUPPORT)
        return self._create_user(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra: Any) -> User:
        extra["role"] = Role.SUPER_ADMIN
        return self._create_user(email, password, **extra)

    def get_by_natural_key(self, username: str | None) -> User:
        return self.get(email__iexact=username or "")


class User(AbstractBaseUser, PermissionsMixin):
    """A control-plane user (super admin, support or billing). Logs in with an e-mail address."""

    email = models.EmailField("e-mail address", unique=True)
    first_name = models.CharField(max_length=150, blank=True)
    last_name = models.CharField(max_length=150, blank=True)
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.SUPPORT)
    is_active = models.BooleanField(default=True, help_text="Unticking disables the account and ends its sessions.")
    is_staff = models.BooleanField(default=True, help_text="May log in to the admin.")
    date_joined = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects: ClassVar[UserManager] = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = ["first_name", "last_name"]

    class Meta:
        ordering = ["email"]

    def __str__(self) -> str:
        return self.email

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.email = self.email.strip().lower()
        # The role is the source of truth for full access; is_superuser follows it.
        self.is_superuser = self.role == Role.SUPER_ADMIN
        super().save(*args, **kwargs)

    def get_full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip() or self.email

    def get_short_name(self) -> str:
        return self.first_name or self.email


class PasswordHistory(models.Model):
    """A password hash a user has had; the newest few cannot be chosen again."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="password_history")
    password_hash = models.CharField(max_length=255)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    audit_redacted_fields = ("password_hash",)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "password history"

    def __str__(self) -> str:
        return f"{self.user} @ {self.created_at:%Y-%m-%d %H:%M}"


class UserSession(models.Model):
    """One logged-in browser session, so a super admin can see and end it.

    Only the SHA-256 of the session key is kept: the middleware compares it on every request, which also
    works with session engines that cannot be deleted server-side. A revoked row stays until the session
    could no longer be valid anyway (absolute timeout), so a missing row means "not a live session".
    """

    class EndReason(models.TextChoices):
        LOGOUT = "logout", "Logged out"
        REVOKED = "revoked", "Ended by an admin"
        DISABLED = "disabled", "Account disabled"
        IDLE = "idle", "Idle timeout"
        ABSOLUTE = "absolute", "Absolute timeout"
        PASSWORD = "password", "Password changed"

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="sessions")
    session_key_hash = models.CharField(max_length=64, unique=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True, db_index=True)
    end_reason = models.CharField(max_length=16, choices=EndReason.choices, blank=True)

    audit_redacted_fields = ("session_key_hash",)

    class Meta:
        ordering = ["-last_seen_at"]
        indexes = [models.Index(fields=["user", "ended_at"], name="accounts_session_user_idx")]

    def __str__(self) -> str:
        return f"{self.user} from {self.ip_address or 'unknown address'} since {self.created_at:%Y-%m-%d %H:%M}"

    @property
    def is_active(self) -> bool:
        return self.ended_at is None


class InvitationRole(models.TextChoices):
    SUPER_ADMIN = Role.SUPER_ADMIN.value, Role.SUPER_ADMIN.label
    SUPPORT = Role.SUPPORT.value, Role.SUPPORT.label
    BILLING = Role.BILLING.value, Role.BILLING.label
    TENANT_ADMIN = "tenant_admin", "Tenant CRM admin"


CONTROL_PLANE_ROLES = frozenset({Role.SUPER_ADMIN.value, Role.SUPPORT.value, Role.BILLING.value})


class Invitation(models.Model):
    """An invitation to become a control-plane user or a tenant's CRM admin.

    Only the SHA-256 of the token is stored; the token itself exists only in the e-mail. ``context`` is
    ``control-plane`` or ``org:<uuid>``: one pending invitation per address and context, several across
    contexts (a person may be invited to administer two organisations).
    """

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        ACCEPTED = "accepted", "Accepted"
        EXPIRED = "expired", "Expired"
        REVOKED = "revoked", "Revoked"

    email = models.EmailField("e-mail address", db_index=True)
    role = models.CharField(max_length=20, choices=InvitationRole.choices)
    inviter = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="invitations_sent")
    organization_id = models.UUIDField(null=True, blank=True, db_index=True)
    context = models.CharField(max_length=64, editable=False)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING, db_index=True)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    send_count = models.PositiveIntegerField(default=0)
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_user = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="invitation_accepted"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)
    expired_at = models.DateTimeField(null=True, blank=True)
    # Acceptances refused because the typed address did not match; too many revoke the invitation.
    email_mismatches = models.PositiveSmallIntegerField(default=0, editable=False)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["email", "context"],
                condition=models.Q(state="pending"),
                name="accounts_invitation_one_pending_per_context",
            ),
            models.CheckConstraint(
                condition=(models.Q(role="tenant_admin", organization_id__isnull=False))
                | (~models.Q(role="tenant_admin") & models.Q(organization_id__isnull=True)),
                name="accounts_invitation_org_iff_tenant_admin",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.email} as {self.get_role_display()} ({self.state})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.email = self.email.strip().lower()
        self.context = self.context_for(self.organization_id)
        super().save(*args, **kwargs)

    @staticmethod
    def context_for(organization_id: Any) -> str:
        """The ``context`` of an invitation to ``organization_id`` (None: the control plane)."""
        return f"org:{organization_id}" if organization_id else "control-plane"

    @property
    def is_control_plane(self) -> bool:
        return self.role in CONTROL_PLANE_ROLES


class InvitationSend(models.Model):
    """One e-mail sent for an invitation (first send and each resend): what the rate limits count.

    ``token_hash`` is the SHA-256 of the link in that e-mail, so a link replaced by a resend is still
    recognised and answered "replaced by a newer invitation" (410) rather than "unknown link" (404).
    """

    invitation = models.ForeignKey(Invitation, on_delete=models.CASCADE, related_name="sends")
    inviter = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    email = models.EmailField(db_index=True)
    sent_at = models.DateTimeField(default=timezone.now, db_index=True)
    token_hash = models.CharField(max_length=64, null=True, blank=True, editable=False)

    audit_redacted_fields = ("token_hash",)

    class Meta:
        ordering = ["-sent_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["token_hash"],
                condition=models.Q(token_hash__isnull=False),
                name="accounts_invitationsend_token_uniq",
            )
        ]

    def __str__(self) -> str:
        return f"{self.email} @ {self.sent_at:%Y-%m-%d %H:%M}"
