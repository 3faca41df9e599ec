"""``Authorization: Bearer gcrm_…`` service-role keys for the REST API, scopes and a per-key rate limit."""

from __future__ import annotations

import logging
import math
from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from ghostcrm.audit.services import Actor
from tenants.api import limits
from tenants.api.limits import PROCESS_CACHE, REDIS_DOWN
from tenants.keys import Unauthenticated, service_key_authenticate, service_key_record_use
from tenants.models import ServiceKey

logger = logging.getLogger(__name__)
BEARER_ONLY = "Send the key as Authorization: Bearer gcrm_…"


class ServiceKeyPrincipal:
    """What ``request.user`` is for a request made with a service key (there is no user behind it)."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    pk = None

    def __init__(self, key: ServiceKey) -> None:
        self.key = key

    def __str__(self) -> str:
        return f"service key {self.key.name}"


class AddressThrottled(exceptions.Throttled):
    default_detail = "Too many requests with refused keys from this address."
    default_code = "throttled"


class ServiceKeyAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[ServiceKeyPrincipal, ServiceKey] | None:
        header = request.headers.get("Authorization", "")
        if not header:
            return None  # DRF answers 401 "not_authenticated"
        http_request = request._request
        scheme, _, token = header.partition(" ")
        token = token.strip()
        # Before the key is looked up: an address flooding bad keys costs no database access at all.
        wait = limits.address_retry_after(http_request)
        if wait is not None:
            limits.refusal_note(request=http_request, token=token, code=limits.THROTTLED)
            raise AddressThrottled(wait=wait)
        try:
            key = self._key(scheme, token)
        except Unauthenticated as exc:
            # Counted, and audited once per key prefix, address and minute (tenants/api/limits.py).
            limits.refusal_note(request=http_request, token=token, code=exc.code)
            raise exceptions.AuthenticationFailed(exc.message, code=exc.code) from None
        # Services called by this request audit as the key.
        http_request.audit_actor = Actor.api_key(key.pk, key.name)  # type: ignore[attr-defined]
        service_key_record_use(key=key, request=http_request)
        return ServiceKeyPrincipal(key), key

    @staticmethod
    def _key(scheme: str, token: str) -> ServiceKey:
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated(BEARER_ONLY, code="invalid_key")
        return service_key_authenticate(raw_key=token)

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="ghostcrm"'


class HasScope(BasePermission):
    """The view names the scope each method needs in ``required_scopes``; the key must carry it."""

    def has_permission(self, request: Request, view: Any) -> bool:
        key = request.auth
        if not isinstance(key, ServiceKey):
            raise exceptions.NotAuthenticated("Send a service key: Authorization: Bearer gcrm_…")
        method = request.method or ""
        if not hasattr(view, method.lower()) or method.lower() not in view.http_method_names:
            raise exceptions.MethodNotAllowed(method)  # a 405, not a missing scope
        if method == "OPTIONS":
            return True  # describes the endpoint; any valid key may ask
        required = view.required_scopes.get("GET" if method == "HEAD" else method, "")
        if not required or required not in key.scope_list:
            raise exceptions.PermissionDenied(
                f"This key lacks the scope {required or 'for this method'}.", code="insufficient_scope"
            )
        return True


class ServiceKeyRateThrottle(SimpleRateThrottle):
    """A request budget per key (``REST_FRAMEWORK['DEFAULT_THROTTLE_RATES']['service_key']``), in Redis."""

    scope = "service_key"

    def get_rate(self) -> str | None:
        # Read at request time so a changed setting applies without a restart of this class.
        rate = api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)
        return str(rate) if rate else None

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        key = request.auth
        if not isinstance(key, ServiceKey):
            return None
        return self.cache_format % {"scope": self.scope, "ident": key.pk}

    def allow_request(self, request: Request, view: Any) -> bool:
        try:
            allowed = super().allow_request(request, view)
        except REDIS_DOWN:
            logger.warning("Redis is unreachable: counting the API rate limit per process")
            self.cache = PROCESS_CACHE
            allowed = super().allow_request(request, view)
        if self.rate is not None and getattr(self, "key", None):
            # ``history`` holds this window's request times, newest first (this request included when allowed).
            history = self.history
            parsed_limit, parsed_duration = self.parse_rate(self.rate)
            limit, duration = int(parsed_limit or 0), int(parsed_duration or 1)
            reset = duration - (self.now - history[-1]) if history else duration
            view.rate_limit_headers = {
                "RateLimit-Limit": str(limit),
                "RateLimit-Remaining": str(max(limit - len(history), 0)),
                "RateLimit-Reset": str(max(math.ceil(reset), 1)),
            }
        return allowed


class ServiceKeyScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "tenants.api.authentication.ServiceKeyAuthentication"
    name = "ServiceKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "bearerFormat": "gcrm_<prefix>_<secret>"}
