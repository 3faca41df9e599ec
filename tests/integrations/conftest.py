from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.utils.text import slugify

from ghostcrm.organizations.models import Organization


def make_organization(name: str = "Acme Ltd") -> Organization:
    slug = f"{slugify(name)[:40]}-{uuid.uuid4().hex[:8]}"
    organization = Organization(name=name, slug=slug, admin_email=f"admin@{slug}.example")
    organization.full_clean()
    organization.save()
    return organization


@pytest.fixture
def organization(db: Any) -> Organization:
    return make_organization()


SLACK_SETTINGS = {"default_channel": "#sales"}
SLACK_SECRETS = {"bot_token": "xoxb-1234567890-abcdefghij", "signing_secret": "0123456789abcdef0123"}
