"""What each integration provider needs: its settings (plain) and its secrets (encrypted at rest).

A small declarative registry: ``PROVIDERS[code]`` lists the keys a provider accepts, which are required
when the integration is enabled, and a check per key. ``validate_preference`` turns a preference's
settings and secrets into per-field error lists (empty when valid).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator

Check = Callable[[Any], str | None]  # returns what is wrong, or None


def text(pattern: str = "", description: str = "", min_length: int = 1) -> Check:
    compiled = re.compile(pattern) if pattern else None

    def check(value: Any) -> str | None:
        if not isinstance(value, str):
            return "must be text"
        if len(value.strip()) < min_length:
            return "must not be empty" if min_length == 1 else f"must be at least {min_length} characters"
        if compiled is not None and not compiled.fullmatch(value):
            return f"must be {description}"
        return None

    return check


def https_url(value: Any) -> str | None:
    if not isinstance(value, str):
        return "must be text"
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname:
        return "must be an https:// URL"
    return None


def email(value: Any) -> str | None:
    try:
        EmailValidator()(value)
    except ValidationError:
        return "must be an e-mail address"
    return None


def json_object_text(*required: str) -> Check:
    def check(value: Any) -> str | None:
        try:
            parsed = json.loads(value) if isinstance(value, str) else None
        except json.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, dict):
            return "must be a JSON object (the downloaded key file)"
        missing = [name for name in required if name not in parsed]
        return f"lacks {', '.join(missing)}" if missing else None

    return check


def text_list(value: Any) -> str | None:
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        return "must be a list of names"
    return None


UUID_PATTERN = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
HOSTNAME_PATTERN = r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}"


@dataclass(frozen=True)
class Key:
    name: str
    check: Check
    required: bool = True
    help_text: str = ""


@dataclass(frozen=True)
class ProviderSpec:
    code: str
    label: str
    settings: tuple[Key, ...] = ()
    secrets: tuple[Key, ...] = ()

    def describe(self) -> str:
        def names(keys: tuple[Key, ...]) -> str:
            return ", ".join(k.name + ("" if k.required else " (optional)") for k in keys) or "none"

        return f"{self.label}: settings {names(self.settings)}; secrets {names(self.secrets)}"


PROVIDER_SPECS = (
    ProviderSpec(
        "slack",
        "Slack",
        settings=(Key("default_channel", text(r"#[a-z0-9][a-z0-9._-]{0,79}", "a channel name like #sales")),),
        secrets=(
            Key("bot_token", text(r"xoxb-[A-Za-z0-9-]{10,}", "a bot token starting xoxb-")),
            Key("signing_secret", text(min_length=16), required=False),
        ),
    ),
    ProviderSpec(
        "google_workspace",
        "Google Workspace",
        settings=(
            Key("domain", text(HOSTNAME_PATTERN, "a domain name like example.com")),
            Key("admin_email", email),
        ),
        secrets=(Key("service_account_json", json_object_text("client_email", "private_key")),),
    ),
    ProviderSpec(
        "microsoft_365",
        "Microsoft 365",
        settings=(
            Key("tenant_id", text(UUID_PATTERN, "a directory (tenant) id, a UUID")),
            Key("client_id", text(UUID_PATTERN, "an application (client) id, a UUID")),
        ),
        secrets=(Key("client_secret", text(min_length=8)),),
    ),
    ProviderSpec(
        "hubspot",
        "HubSpot",
        settings=(Key("portal_id", text(r"[0-9]{1,12}", "a numeric portal id")),),
        secrets=(Key("private_app_token", text(r"pat-[a-z0-9]+-[A-Za-z0-9-]{8,}", "a private app token (pat-…)")),),
    ),
    ProviderSpec(
        "salesforce",
        "Salesforce",
        settings=(Key("instance_url", https_url), Key("client_id", text(min_length=8))),
        secrets=(Key("client_secret", text(min_length=8)), Key("refresh_token", text(min_length=8))),
    ),
    ProviderSpec(
        "mailchimp",
        "Mailchimp",
        settings=(
            Key("server_prefix", text(r"[a-z]{2,4}[0-9]{1,3}", "the data-centre prefix, like us21")),
            Key("audience_id", text(r"[0-9a-f]{10}", "a 10-character audience id"), required=False),
        ),
        secrets=(Key("api_key", text(r"[0-9a-f]{32}-[a-z]{2,4}[0-9]{1,3}", "an API key like 0123…cdef-us21")),),
    ),
    ProviderSpec(
        "twilio",
        "Twilio",
        settings=(
            Key("account_sid", text(r"AC[0-9a-f]{32}", "an account SID (AC followed by 32 hex digits)")),
            Key("from_number", text(r"\+[1-9][0-9]{6,14}", "a phone number in E.164 form, like +447700900123")),
        ),
        secrets=(Key("auth_token", text(r"[0-9a-f]{32}", "a 32-hex-digit auth token")),),
    ),
    ProviderSpec(
        "zapier",
        "Zapier",
        settings=(Key("hook_url", https_url),),
        secrets=(Key("api_key", text(min_length=16), required=False),),
    ),
    ProviderSpec(
        "webhook",
        "Outgoing webhook",
        settings=(Key("url", https_url), Key("events", text_list, required=False)),
        secrets=(Key("signing_secret", text(min_length=16)),),
    ),
    ProviderSpec(
        "stripe",
        "Stripe",
        settings=(Key("account_id", text(r"acct_[A-Za-z0-9]{8,}", "an account id (acct_…)"), required=False),),
        secrets=(
            Key("secret_key", text(r"(sk|rk)_(live|test)_[A-Za-z0-9]{16,}", "a secret or restricted key (sk_…)")),
            Key(
                "webhook_secret", text(r"whsec_[A-Za-z0-9]{16,}", "a webhook signing secret (whsec_…)"), required=False
            ),
        ),
    ),
)
PROVIDERS: dict[str, ProviderSpec] = {spec.code: spec for spec in PROVIDER_SPECS}
PROVIDER_CHOICES = [(spec.code, spec.label) for spec in PROVIDER_SPECS]


def _check_keys(kind: str, keys: tuple[Key, ...], values: Any, *, enabled: bool) -> list[str]:
    if not isinstance(values, dict):
        return [f"{kind.capitalize()} must be a JSON object of names to values."]
    known = {key.name: key for key in keys}
    problems = []
    unknown = sorted(set(values) - set(known))
    if unknown:
        accepted = ", ".join(known) or "none"
        problems.append(f"Unknown {kind} {', '.join(unknown)}; this provider accepts: {accepted}.")
    for key in keys:
        if key.name not in values or values[key.name] in (None, ""):
            if key.required and enabled:
                problems.append(f"{key.name} is required to enable this integration.")
            continue
        wrong = key.check(values[key.name])
        if wrong:
            problems.append(f"{key.name} {wrong}.")
    return problems


def validate_preference(*, provider: str, settings: Any, secrets: Any, enabled: bool) -> dict[str, list[str]]:
    """Per-field problems with a preference (``{}`` when valid).

    Required keys are only enforced while the integration is enabled, so a disabled one may be saved
    half-configured.
    """
    spec = PROVIDERS.get(provider)
    if spec is None:
        return {"provider": [f"Unknown provider {provider!r}; choose one of {', '.join(PROVIDERS)}."]}
    errors: dict[str, list[str]] = {}
    setting_problems = _check_keys("settings", spec.settings, settings, enabled=enabled)
    secret_problems = _check_keys("secrets", spec.secrets, secrets, enabled=enabled)
    if setting_problems:
        errors["settings"] = setting_problems
    if secret_problems:
        errors["secrets"] = secret_problems
    return errors


def validate_provider_codes(value: list[Any]) -> None:
    """Validator of the ``integrations.enabled_providers`` system setting."""
    unknown = [str(item) for item in value if item not in PROVIDERS]
    if unknown:
        raise ValidationError(f"unknown providers {', '.join(unknown)}; known: {', '.join(PROVIDERS)}.")
