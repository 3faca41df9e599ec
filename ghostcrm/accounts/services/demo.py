"""The demo super admin of ``make demo`` (never in production)."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import transaction
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from ghostcrm.accounts.models import Role, User
from ghostcrm.accounts.services.passwords import password_change
from ghostcrm.audit.services import Actor, audit_record
from ghostcrm.core.errors import PermissionDenied

DEMO_ADMIN_EMAIL = "demo-admin@ghostcrm.local"


def demo_admin_create() -> tuple[User, str]:
    """Create (or reset) the demo super admin for ``make demo``; returns it and its new random password.

    Refused when GHOSTCRM_ENV=production. The password is random on every call and the account's MFA is
    reset, so the person running the demo enrols an authenticator at first sign-in (the real flow).
    """
    if settings.GHOSTCRM_ENV == "production":
        raise PermissionDenied(
            "The demo admin account is never created when GHOSTCRM_ENV=production; invite administrators with "
            "`python manage.py invite_user --email you@example.com --role super_admin` instead.",
            code="demo_refused",
        )
    password = secrets.token_urlsafe(18)
    actor = Actor.system("demo")
    with transaction.atomic():
        user = User.objects.filter(email=DEMO_ADMIN_EMAIL).first()
        if user is None:
            user = User.objects.create_superuser(
                email=DEMO_ADMIN_EMAIL, password=password, first_name="Demo", last_name="Admin"
            )
        else:
            user.role = Role.SUPER_ADMIN
            user.is_active = True
            user.is_staff = True
            user.save()
            # A random password, not one a person chose: the history rules do not apply to it.
            password_change(user=user, password=password, actor=actor, validate=False)
            TOTPDevice.objects.filter(user=user).delete()
            StaticDevice.objects.filter(user=user).delete()
        audit_record(
            action="auth.demo_admin",
            actor=actor,
            target=user,
            message=f"Demo super admin {DEMO_ADMIN_EMAIL} created or reset (GHOSTCRM_ENV={settings.GHOSTCRM_ENV}).",
        )
    return user, password
