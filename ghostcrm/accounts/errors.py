"""The accounts app's members of the one error family (``ghostcrm.core.errors``)."""

from __future__ import annotations

from ghostcrm.core.errors import ApplicationError


class RateLimited(ApplicationError):
    code = "rate_limited"
    http_status = 429


class InvitationGone(ApplicationError):
    """The invitation exists but can no longer be used (accepted, expired or revoked): HTTP 410."""

    code = "invitation_gone"
    http_status = 410


class MFAFailed(ApplicationError):
    """A second-factor code that was checked and is wrong (counts towards the sign-in lockout)."""

    code = "mfa_failed"
    http_status = 400


class MFAThrottled(ApplicationError):
    """A second-factor code refused unchecked: django-otp's throttle after wrong codes has not yet passed.

    ``extra`` carries ``retry_after`` (seconds) and ``retry_at`` (ISO time). Not a failed attempt: no code
    was compared, so it does not count towards the lockout.
    """

    code = "mfa_throttled"
    http_status = 429
