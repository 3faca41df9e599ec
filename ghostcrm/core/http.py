"""The client's address, the one way every part of the control plane computes it."""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str | None:
    """The client's address, as the audit log, session records and the sign-in lockout all see it.

    Behind ``TRUSTED_PROXY_COUNT`` reverse proxies, each appending the address it received from to
    X-Forwarded-For, the client is the entry that many places from the right; entries further left were
    written by the client and are never trusted (they would let anyone dodge the per-address lockout).
    Without proxies (0, the default) it is REMOTE_ADDR.
    """
    proxies = int(getattr(settings, "TRUSTED_PROXY_COUNT", 0))
    if proxies > 0:
        hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
        if len(hops) >= proxies:  # fewer hops: the request did not come through every proxy, use the peer
            try:
                return str(ipaddress.ip_address(hops[-proxies]))
            except ValueError:
                pass  # a proxy that writes something else (host:port): fall back to the peer address
    return request.META.get("REMOTE_ADDR") or None
