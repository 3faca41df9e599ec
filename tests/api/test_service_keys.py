"""Service-role keys: hashing, scopes, expiry, revocation, rate limit, audit of every use."""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from ghostcrm.audit.models import AuditEvent
from ghostcrm.audit.services import Actor
from ghostcrm.core.errors import ValidationError
from tenants.api.limits import api_refusals_flush
from tenants.keys import KEY_RE, service_key_revoke
from tenants.models import ServiceKey

pytestmark = pytest.mark.django_db
LIST_URL = "/api/v1/organizations/"


def _client(raw: str | None) -> APIClient:
    client = APIClient()
    if raw is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def test_key_is_shown_once_and_stored_only_as_a_hash(make_key: Callable[..., Any]) -> None:
    key, raw = make_key(["organizations:read"])
    match = KEY_RE.match(raw)
    assert match is not None and match["prefix"] == key.prefix
    stored = ServiceKey.objects.get(pk=key.pk)
    assert stored.key_hash == hashlib.sha256(match["secret"].encode()).hexdigest()
    assert match["secret"] not in {getattr(stored, f.attname) for f in ServiceKey._meta.concrete_fields}
    event = AuditEvent.objects.get(action="service_key.create")
    assert event.after["key_hash"] == "[redacted]"


def test_key_validation_refuses_unknown_scopes_empty_names_and_past_expiry(make_key: Callable[..., Any]) -> None:
    with pytest.raises(ValidationError) as caught:
        make_key(["organizations:delete"])
    assert "scopes" in caught.value.extra["fields"]
    with pytest.raises(ValidationError):
        make_key(name=" ")
    with pytest.raises(ValidationError):
        make_key(expires_at=timezone.now() - dt.timedelta(minutes=1))
    assert not ServiceKey.objects.exists()


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (None, "not_authenticated"),
        ("Bearer", "invalid_key"),
        ("Basic dXNlcjpwYXNz", "invalid_key"),
        ("Bearer gcrm_deadbeef_" + "A" * 43, "invalid_key"),
        ("Bearer not-a-key", "invalid_key"),
    ],
)
def test_missing_or_bad_keys_get_401_json(header: str | None, code: str) -> None:
    client = APIClient()
    if header is not None:
        client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get(LIST_URL)
    assert response.status_code == 401
    assert response.json()["code"] == code and response.json()["message"]
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_wrong_secret_with_a_real_prefix_is_refused_and_audited(make_key: Callable[..., Any]) -> None:
    _, raw = make_key()
    forged = raw[:-4] + ("AAAA" if not raw.endswith("AAAA") else "BBBB")
    response = _client(forged).get(LIST_URL)
    assert response.status_code == 401
    assert api_refusals_flush(now=time.time() + 60) == 1  # refusals are audited per minute (tests/api/test_flood.py)
    denied = AuditEvent.objects.filter(action="api.request", outcome="denied")
    assert denied.count() == 1
    assert denied.get().after["key_prefix"] == raw.split("_")[1]


def test_wrong_scope_gets_403(make_key: Callable[..., Any]) -> None:
    _, raw = make_key(["organizations:read"])
    client = _client(raw)
    assert client.get(LIST_URL).status_code == 200
    response = client.post(LIST_URL, {"client_name": "ACME", "admin_email": "a@acme.test"}, format="json")
    assert response.status_code == 403
    assert response.json()["code"] == "insufficient_scope"
    assert "organizations:write" in response.json()["message"]


def test_expired_and_revoked_keys_get_401(make_key: Callable[..., Any]) -> None:
    key, raw = make_key(expires_at=timezone.now() + dt.timedelta(hours=1))
    client = _client(raw)
    assert client.get(LIST_URL).status_code == 200
    ServiceKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    response = client.get(LIST_URL)
    assert (response.status_code, response.json()["code"]) == (401, "key_expired")
    other, raw2 = make_key()
    service_key_revoke(key_id=other.pk, actor=Actor.system("test"))
    response = _client(raw2).get(LIST_URL)
    assert (response.status_code, response.json()["code"]) == (401, "key_revoked")
    assert AuditEvent.objects.filter(action="service_key.revoke", target_id=str(other.pk)).exists()


def test_every_use_is_audited_as_the_key_and_last_used_is_kept(make_key: Callable[..., Any]) -> None:
    key, raw = make_key(name="billing-bot")
    assert key.last_used_at is None
    _client(raw).get(LIST_URL)
    _client(raw).get(LIST_URL + "?status=active")
    key.refresh_from_db()
    assert key.last_used_at is not None
    uses = AuditEvent.objects.filter(action="api.request", actor_type="api_key", actor_id=str(key.pk))
    assert uses.count() == 2
    assert {e.actor_label for e in uses} == {"billing-bot"}


@override_settings(
    REST_FRAMEWORK={
        "EXCEPTION_HANDLER": "ghostcrm.core.api.exception_handler",
        "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
        "UNAUTHENTICATED_USER": None,
        "DEFAULT_THROTTLE_RATES": {"service_key": "3/min"},
    }
)
def test_rate_limit_is_per_key_with_retry_after(make_key: Callable[..., Any]) -> None:
    _, raw = make_key()
    _, other = make_key(name="other")
    client = _client(raw)
    assert [client.get(LIST_URL).status_code for _ in range(3)] == [200, 200, 200]
    limited = client.get(LIST_URL)
    assert limited.status_code == 429
    assert limited.json()["code"] == "throttled"
    assert 0 < int(limited["Retry-After"]) <= 60
    assert _client(other).get(LIST_URL).status_code == 200  # another key has its own budget


def test_create_service_key_command_prints_the_key_once(capsys: pytest.CaptureFixture[str]) -> None:
    call_command("create_service_key", "--name", "ops", "--scopes", "organizations:read,organizations:lifecycle",
                 "--expires", "30d")  # fmt: skip
    out = capsys.readouterr().out
    raw = out.strip().splitlines()[-1]
    assert KEY_RE.match(raw)
    key = ServiceKey.objects.get(name="ops")
    assert key.scope_list == ["organizations:lifecycle", "organizations:read"]
    assert key.expires_at is not None and key.expires_at > timezone.now() + dt.timedelta(days=29)
    assert _client(raw).get(LIST_URL).status_code == 200


@pytest.mark.parametrize(
    "argv",
    [
        ["--name", "x", "--scopes", "organizations:nope"],
        ["--name", "", "--scopes", "organizations:read"],
        ["--name", "x", "--scopes", "organizations:read", "--expires", "tomorrow"],
        ["--name", "x", "--scopes", "organizations:read", "--expires", "2001-01-01"],
    ],
)
def test_create_service_key_command_refuses_bad_input(argv: list[str]) -> None:
    with pytest.raises(CommandError):
        call_command("create_service_key", *argv)
    assert not ServiceKey.objects.exists()
