"""Helpers for the authentication-security tests: users with known passwords, TOTP codes, sign-in steps."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from ghostcrm.accounts.models import Role, User

PASSWORD = "violet-lantern-harbour-42"


def totp_code(device: TOTPDevice, offset_steps: int = 0) -> str:
    """The device's code for the current (possibly frozen) time, or ``offset_steps`` steps away."""
    generator = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    generator.time = time.time() + offset_steps * device.step
    return f"{generator.token():0{device.digits}d}"


def enrol(user: User) -> TOTPDevice:
    return TOTPDevice.objects.create(user=user, name="phone", confirmed=True)


def password_step(client: Client, email: str, password: str = PASSWORD, **extra: Any) -> Any:
    return client.post(reverse("accounts:login"), {"username": email, "password": password}, **extra)


def full_sign_in(client: Client, user: User, device: TOTPDevice, password: str = PASSWORD) -> Any:
    response = password_step(client, user.email, password)
    assert response.status_code == 302 and response.url == reverse("accounts:mfa"), response
    return client.post(reverse("accounts:mfa"), {"code": totp_code(device)})


@pytest.fixture
def staff_user(django_user_model: Any) -> User:
    return django_user_model.objects.create_user(
        email="sam.support@ghostcrm.test", password=PASSWORD, role=Role.SUPPORT, first_name="Sam", last_name="Support"
    )


@pytest.fixture
def boss(django_user_model: Any) -> User:
    return django_user_model.objects.create_superuser(
        email="bea.boss@ghostcrm.test", password=PASSWORD, first_name="Bea", last_name="Boss"
    )
