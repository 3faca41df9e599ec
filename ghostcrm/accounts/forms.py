from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.admin.forms import AdminPasswordChangeForm as DjangoSitePasswordChangeForm

from ghostcrm.accounts.context import get_current_request
from ghostcrm.accounts.models import User
from ghostcrm.accounts.services.passwords import password_change
from ghostcrm.audit.services import Actor


class ServicePasswordMixin:
    """For Django's password forms: the new password is set by ``password_change`` (history, other sessions
    ended, audited) instead of ``set_password`` + ``save``. The form has already validated it."""

    cleaned_data: dict[str, Any]

    def set_password_and_save(
        self,
        user: User,
        password_field_name: str = "password1",  # noqa: S107  (a form field name, not a password)
        commit: bool = True,
        **kwargs: Any,
    ) -> User:
        if not commit or not self.cleaned_data.get("set_usable_password", True):
            return super().set_password_and_save(  # type: ignore[misc]
                user, password_field_name=password_field_name, commit=commit, **kwargs
            )
        request = get_current_request()
        password_change(
            user=user,
            password=self.cleaned_data[password_field_name],
            actor=Actor.for_user(getattr(request, "user", None)) if request is not None else Actor.system(),
            request=request,
            except_session_key=request.session.session_key if request is not None else None,
            validate=False,
        )
        return user


class SitePasswordChangeForm(ServicePasswordMixin, DjangoSitePasswordChangeForm):
    """The admin's "change my password" page (old password, then the new one twice)."""


class LoginForm(forms.Form):
    username = forms.EmailField(
        label="E-mail address",
        max_length=254,
        widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "username"}),
    )
    password = forms.CharField(
        label="Password",
        max_length=4096,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )


class CodeForm(forms.Form):
    code = forms.CharField(
        label="Code",
        max_length=32,
        widget=forms.TextInput(attrs={"autofocus": True, "autocomplete": "one-time-code", "inputmode": "text"}),
        help_text="The 6-digit code from your authenticator app, or one of your backup codes.",
    )


class EnrolForm(forms.Form):
    code = forms.CharField(
        label="Code from the app",
        max_length=10,
        widget=forms.TextInput(attrs={"autofocus": True, "autocomplete": "one-time-code", "inputmode": "numeric"}),
    )


class PasswordConfirmForm(forms.Form):
    password = forms.CharField(
        label="Your password",
        max_length=4096,
        strip=False,
        widget=forms.PasswordInput(attrs={"autofocus": True, "autocomplete": "current-password"}),
    )


class InvitationAcceptForm(forms.Form):
    email = forms.EmailField(
        label="Your e-mail address", max_length=254, help_text="The address this invitation was sent to."
    )
    first_name = forms.CharField(label="First name", max_length=150, required=False)
    last_name = forms.CharField(label="Last name", max_length=150, required=False)
    password1 = forms.CharField(
        label="Choose a password",
        max_length=4096,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="12 to 128 characters; a passphrase of several words works well.",
    )
    password2 = forms.CharField(
        label="Repeat the password",
        max_length=4096,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean(self) -> dict:
        data = super().clean() or {}
        if data.get("password1") and data.get("password2") and data["password1"] != data["password2"]:
            self.add_error("password2", "The two passwords differ.")
        return data
