"""Wiring the accounts app into the project once the app registry is ready (called by ``AccountsConfig.ready``)."""

from __future__ import annotations

from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from ghostcrm.accounts import receivers  # noqa: F401  (importing it connects the signal receivers)
from ghostcrm.core.system_settings import SettingSpec, register


def connect() -> None:
    # The TOTP secret must never reach an audit snapshot (admin deletes record `before`).
    TOTPDevice.audit_redacted_fields = ("key",)  # type: ignore[attr-defined]
    StaticDevice.audit_redacted_fields = ()  # type: ignore[attr-defined]
    register(
        SettingSpec(
            key="accounts.invitation_expiry_hours",
            type=int,
            default=72,
            help_text="Hours an invitation link stays valid (a resend starts a new period).",
            min_value=1,
            max_value=24 * 30,
        ),
        SettingSpec(
            key="accounts.invitations_per_inviter_per_hour",
            type=int,
            default=20,
            help_text="Invitation e-mails (sends and resends) one person may send per hour.",
            min_value=1,
            max_value=10000,
        ),
        SettingSpec(
            key="accounts.invitations_per_address_per_day",
            type=int,
            default=5,
            help_text="Invitation e-mails one address may receive per 24 hours, from everyone together.",
            min_value=1,
            max_value=1000,
        ),
    )
