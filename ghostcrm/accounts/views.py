"""Sign-in (password, then TOTP or enrolment), password confirmation, own MFA, and invitation pages.

Views are thin: each calls one service and renders the outcome.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import segno
from django.contrib import admin, messages
from django.contrib.auth import REDIRECT_FIELD_NAME, authenticate, logout
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods

from ghostcrm.accounts import lockout, selectors
from ghostcrm.accounts.errors import InvitationGone, MFAFailed, MFAThrottled
from ghostcrm.accounts.forms import CodeForm, EnrolForm, InvitationAcceptForm, LoginForm, PasswordConfirmForm
from ghostcrm.accounts.services import invitations, mfa, signin
from ghostcrm.audit.services import Actor
from ghostcrm.core.errors import ApplicationError, NotFound


def _context(request: HttpRequest, title: str, **extra: Any) -> dict[str, Any]:
    return {**admin.site.each_context(request), "title": title, **extra}


def _safe_next(request: HttpRequest, candidate: str | None = None) -> str:
    value = (
        candidate
        if candidate is not None
        else request.POST.get(REDIRECT_FIELD_NAME) or request.GET.get(REDIRECT_FIELD_NAME, "")
    )
    if value and url_has_allowed_host_and_scheme(
        value, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return value
    return reverse("admin:index")


def verified_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Logged in *and* past the second factor; otherwise to the second-factor step."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        user = request.user
        if not user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not user.is_verified():  # type: ignore[union-attr,attr-defined]
            return HttpResponseRedirect(
                f"{reverse('accounts:mfa')}?{urlencode({REDIRECT_FIELD_NAME: request.get_full_path()})}"
            )
        return view(request, *args, **kwargs)

    return wrapper


def _locked(request: HttpRequest, username: str) -> HttpResponse | None:
    """The lockout page when this (username, address) is locked, so a second factor is not even checked."""
    lockout.prepare_request(request)
    credentials = {"username": username}
    if lockout.handler().is_allowed(request, credentials):
        return None
    return lockout.lockout_response(request, None, credentials)


@sensitive_post_parameters("password")
@csrf_protect
@never_cache
@require_http_methods(["GET", "POST"])
def login_view(request: HttpRequest) -> HttpResponse:
    next_url = _safe_next(request)
    if request.user.is_authenticated and request.user.is_verified():  # type: ignore[union-attr,attr-defined]
        if admin.site.has_permission(request):
            return HttpResponseRedirect(next_url)
        # Signed in but no longer allowed in the admin (staff flag removed): sign out rather than loop.
        logout(request)
    form = LoginForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        email = form.cleaned_data["username"].strip().lower()
        user = authenticate(request, username=email, password=form.cleaned_data["password"])
        if getattr(request, "axes_locked_out", False):
            return lockout.lockout_response(request, None, {"username": email})
        if user is not None and not user.is_staff:
            # Right password, but the account may not use the admin: a refused sign-in like any other
            # (audited, counted by the lockout), with the same sentence so it reveals nothing.
            signin.auth_login_failed(request=request, username=email, factor="password")
            if getattr(request, "axes_locked_out", False):
                return lockout.lockout_response(request, None, {"username": email})
            user = None
        if user is None:
            form.add_error(None, "The e-mail address or password is not correct.")
        else:
            signin.auth_preauth_begin(request=request, user=user, next_url=next_url)
            step = "accounts:mfa" if selectors.user_has_mfa(user=user) else "accounts:mfa_enrol"
            return redirect(step)
    return render(request, "registration/login.html", _context(request, "Sign in", form=form, next=next_url))


@sensitive_post_parameters("code")
@csrf_protect
@never_cache
@require_http_methods(["GET", "POST"])
def mfa_view(request: HttpRequest) -> HttpResponse:
    user, next_url = signin.auth_pending_user(request=request)
    if user is None:
        return redirect("accounts:login")
    if not selectors.user_has_mfa(user=user):
        return redirect("accounts:mfa_enrol")
    next_url = _safe_next(request, request.GET.get(REDIRECT_FIELD_NAME) or next_url)
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        locked = _locked(request, user.email)
        if locked is not None:
            return locked
        code = form.cleaned_data["code"]
        try:
            device, factor = mfa.mfa_verify(user=user, code=code)
        except MFAThrottled as exc:
            form.add_error("code", exc.message)  # not checked, so not a failed attempt
        except MFAFailed as exc:
            signin.auth_login_failed(request=request, username=user.email, factor=exc.extra.get("factor", "totp"))
            if getattr(request, "axes_locked_out", False):
                return lockout.lockout_response(request, None, {"username": user.email})
            form.add_error("code", exc.message)
        else:
            signin.auth_login_complete(request=request, user=user, device=device, factor=factor)
            if factor == "backup":
                left = selectors.user_backup_codes_left(user=user)
                messages.warning(
                    request, f"You used a backup code; {left} left. Generate new ones on your security page."
                )
            return HttpResponseRedirect(next_url)
    return render(request, "registration/mfa.html", _context(request, "Second factor", form=form, pending_user=user))


@sensitive_post_parameters("code")
@csrf_protect
@never_cache
@require_http_methods(["GET", "POST"])
def mfa_enrol_view(request: HttpRequest) -> HttpResponse:
    user, next_url = signin.auth_pending_user(request=request)
    if user is None:
        return redirect("accounts:login")
    if selectors.user_has_mfa(user=user):
        return redirect("accounts:mfa")
    next_url = _safe_next(request, request.GET.get(REDIRECT_FIELD_NAME) or next_url)
    form = EnrolForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        locked = _locked(request, user.email)
        if locked is not None:
            return locked
        try:
            device, codes = mfa.mfa_enrol_confirm(request=request, user=user, code=form.cleaned_data["code"])
        except MFAThrottled as exc:
            form.add_error("code", exc.message)
        except MFAFailed as exc:
            signin.auth_login_failed(request=request, username=user.email, factor="totp")
            if getattr(request, "axes_locked_out", False):
                return lockout.lockout_response(request, None, {"username": user.email})
            form.add_error("code", exc.message)
        except ApplicationError as exc:
            form.add_error(None, exc.message)
        else:
            signin.auth_login_complete(request=request, user=user, device=device, factor="totp")
            return render(
                request,
                "registration/backup_codes.html",
                _context(request, "Your backup codes", codes=codes, next=next_url),
            )
    device = mfa.mfa_enrolment_device(user=user)
    qr_svg = segno.make(device.config_url, error="m").svg_inline(scale=4, dark="#000", light="#fff")
    secret = base64.b32encode(device.bin_key).decode("ascii")
    return render(
        request,
        "registration/mfa_enrol.html",
        _context(
            request,
            "Set up your authenticator",
            form=form,
            qr_svg=qr_svg,
            secret=" ".join(secret[i : i + 4] for i in range(0, len(secret), 4)),
            pending_user=user,
        ),
    )


@sensitive_post_parameters("password")
@csrf_protect
@never_cache
@verified_required
@require_http_methods(["GET", "POST"])
def reauth_view(request: HttpRequest) -> HttpResponse:
    next_url = _safe_next(request)
    form = PasswordConfirmForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            signin.reauth_confirm(request=request, password=form.cleaned_data["password"])
        except ApplicationError as exc:
            if getattr(request, "axes_locked_out", False):
                return lockout.lockout_response(request, None, {"username": request.user.get_username()})
            form.add_error("password", exc.message)
        else:
            return HttpResponseRedirect(next_url)
    return render(
        request, "registration/reauth.html", _context(request, "Confirm your password", form=form, next=next_url)
    )


@csrf_protect
@never_cache
@verified_required
@require_http_methods(["GET"])
def security_view(request: HttpRequest) -> HttpResponse:
    user = request.user
    return render(
        request,
        "registration/security.html",
        _context(
            request,
            "Your sign-in security",
            has_mfa=selectors.user_has_mfa(user=user),  # type: ignore[arg-type]
            backup_codes_left=selectors.user_backup_codes_left(user=user),  # type: ignore[arg-type]
            sessions=selectors.user_sessions_active(user=user),  # type: ignore[arg-type]
        ),
    )


@csrf_protect
@never_cache
@verified_required
@require_http_methods(["POST"])
def backup_codes_view(request: HttpRequest) -> HttpResponse:
    codes = mfa.backup_codes_generate(user=request.user, request=request)  # type: ignore[arg-type]
    return render(
        request,
        "registration/backup_codes.html",
        _context(request, "Your new backup codes", codes=codes, next=reverse("accounts:security")),
    )


@csrf_protect
@never_cache
@verified_required
@require_http_methods(["POST"])
def mfa_reset_view(request: HttpRequest) -> HttpResponse:
    user = request.user
    mfa.mfa_reset(user=user, actor=Actor.for_user(user), request=request, reason="Reset by the user.")  # type: ignore[arg-type]
    messages.info(request, "Your authenticator and backup codes were removed. Sign in again to set up a new one.")
    return redirect("accounts:login")


def email_hint(email: str) -> str:
    """The invited address with most of its local part hidden: enough for its owner to recognise, while the
    holder of a forwarded link still has to know the address to accept (``ne••••••••@example.com``)."""
    local, _, domain = email.partition("@")
    shown = local[:2] if len(local) > 4 else local[:1]
    return f"{shown}{'•' * max(3, len(local) - len(shown))}@{domain}"


# The service's field names where the acceptance form calls them differently.
_ACCEPT_FORM_FIELDS = {"password": "password1"}


def _form_errors(form: InvitationAcceptForm, exc: ApplicationError) -> None:
    """Every field error of ``exc`` on its form field, all at once; the sentence on top unless the only
    problem is the password (its messages already say it all, under the field)."""
    fields = exc.extra.get("fields", {})
    if set(fields) != {"password"}:
        form.add_error(None, exc.message)
    for name, errors in fields.items():
        field = _ACCEPT_FORM_FIELDS.get(name, name)
        for error in errors:
            form.add_error(field if field in form.fields else None, error)


def _invitation_gone(request: HttpRequest, exc: ApplicationError) -> HttpResponse:
    return render(
        request,
        "accounts/invitation_gone.html",
        _context(request, "Invitation no longer valid", reason=exc.message),
        status=410,
    )


@sensitive_post_parameters("password1", "password2")
@csrf_protect
@never_cache
@require_http_methods(["GET", "POST"])
def invitation_view(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows who invited you to what and changes nothing; only the POST accepts."""
    try:
        invitation = invitations.invitation_for_link(token=token)
    except NotFound:
        return render(
            request, "accounts/invitation_invalid.html", _context(request, "Invitation link not valid"), status=404
        )
    except InvitationGone as exc:
        return _invitation_gone(request, exc)
    form = InvitationAcceptForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            accepted, user = invitations.invitation_accept(
                token=token,
                email=form.cleaned_data["email"],
                password=form.cleaned_data["password1"],
                first_name=form.cleaned_data["first_name"],
                last_name=form.cleaned_data["last_name"],
                request=request,
            )
        except InvitationGone as exc:
            return _invitation_gone(request, exc)
        except ApplicationError as exc:
            _form_errors(form, exc)
            status = exc.http_status if exc.http_status != 404 else 400
        else:
            if user is not None:
                # A new control-plane account: the password step is done, enrol the second factor now.
                user.backend = "ghostcrm.accounts.backends.RoleBackend"  # type: ignore[attr-defined]
                signin.auth_preauth_begin(request=request, user=user, next_url=reverse("admin:index"))
                return redirect("accounts:mfa_enrol")
            return render(
                request,
                "accounts/invitation_done.html",
                _context(request, "Invitation accepted", target=selectors.invitation_target_label(invitation=accepted)),
            )
    return render(
        request,
        "accounts/invitation.html",
        _context(
            request,
            "Invitation",
            form=form,
            invitation=invitation,
            email_hint=email_hint(invitation.email),
            inviter_name=invitation.inviter.get_full_name() if invitation.inviter else "GhostCRM",
            inviter_email=invitation.inviter.email if invitation.inviter else "",
            target=selectors.invitation_target_label(invitation=invitation),
        ),
        status=status,
    )
