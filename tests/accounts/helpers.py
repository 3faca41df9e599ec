"""Steps the accounts tests repeat: TOTP codes, the sign-in steps, a verified admin session, and
invitations whose e-mail (sent on commit) is delivered inside the test's transaction."""

from __future__ import annotations

import re
import time
from typing import Any

from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.test import Client, TestCase
from django.urls import reverse
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from ghostcrm.accounts.models import Invitation, User
from ghostcrm.accounts.services.invitations import invitation_create
from ghostcrm.audit.services import Actor
from tests.accounts.factories import PASSWORD, TOTPDeviceFactory

# Run the on-commit callbacks (the invitation e-mail) registered inside the block, as a real commit would;
# the test's own transaction never commits.
on_commit_run = TestCase.captureOnCommitCallbacks


def totp_code(device: TOTPDevice, offset_steps: int = 0) -> str:
    """The device's code for the current (possibly frozen) time, or ``offset_steps`` steps away."""
    generator = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    generator.time = time.time() + offset_steps * device.step
    return f"{generator.token():0{device.digits}d}"


def enrol(user: User) -> TOTPDevice:
    return TOTPDeviceFactory(user=user)


def password_step(client: Client, email: str, password: str = PASSWORD, **extra: Any) -> Any:
    return client.post(reverse("accounts:login"), {"username": email, "password": password}, **extra)


def full_sign_in(client: Client, user: User, device: TOTPDevice, password: str = PASSWORD) -> Any:
    response = password_step(client, user.email, password)
    assert response.status_code == 302
    assert response.url == reverse("accounts:mfa")
    return client.post(reverse("accounts:mfa"), {"code": totp_code(device)})


def verified_login(client: Client, user: User) -> Client:
    """``client`` signed in as ``user`` with a verified authenticator and a recent password confirmation."""
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first() or enrol(user)
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session["_gc_reauth_at"] = time.time()
    session.save()
    return client


def last_link_token() -> str:
    """The token of the invitation link in the last e-mail sent."""
    found = re.search(r"/accounts/invitations/([A-Za-z0-9_-]+)/", mail.outbox[-1].body)
    assert found is not None
    return found.group(1)


def invite(
    email: str = "new.person@example.com", role: str = "support", inviter: User | None = None, **kw: Any
) -> tuple[Invitation, str]:
    """Invite through the service, deliver the e-mail, and return the invitation and its link's token."""
    with on_commit_run(execute=True):
        invitation = invitation_create(email=email, role=role, inviter=inviter, actor=Actor.system("test"), **kw)
    return invitation, last_link_token()


class RefusingEmailBackend(BaseEmailBackend):
    """A mail server that refuses every message, as SMTP does when it is down."""

    def send_messages(self, email_messages: Any) -> int:
        refused = "connection refused by smtp.example.test"
        raise ConnectionRefusedError(refused)
