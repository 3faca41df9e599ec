"""Password rules: 12-128 characters, common list, similarity, no composition rules, last 5 not reused;
the history is written by the password service, never by a validator."""

from __future__ import annotations

import pytest
from django.contrib.auth import password_validation as pv
from django.core.exceptions import ValidationError
from django.urls import reverse

from ghostcrm.accounts.models import PasswordHistory, UserSession
from ghostcrm.accounts.services.passwords import password_change
from ghostcrm.audit.models import AuditEvent
from ghostcrm.audit.services import Actor
from ghostcrm.core.errors import ValidationError as AppValidationError
from tests.accounts.factories import PASSWORD

pytestmark = pytest.mark.django_db


def _errors(password, user=None) -> list[str]:
    try:
        pv.validate_password(password, user=user)
    except ValidationError as exc:
        return [e.code for e in exc.error_list]
    return []


def _change(user, password) -> int:
    return password_change(user=user, password=password, actor=Actor.system("test"))


def test_length_bounds_and_no_composition_rules(staff_user):
    assert "password_too_short" in _errors("a" * 5 + "bcdefg", staff_user)  # 11 characters
    assert _errors("plain lowercase words only", staff_user) == []  # no digit, capital or symbol needed
    assert _errors("x7" * 64, staff_user) == []  # 128 characters
    assert "password_too_long" in _errors("x7" * 64 + "z", staff_user)


def test_common_and_similar_passwords_refused(staff_user):
    assert "password_too_common" in _errors("password1234")
    assert "password_too_similar" in _errors("sam.support@ghostcrm.test", staff_user)


def test_last_five_passwords_cannot_be_reused(staff_user):
    passwords = [PASSWORD] + [f"rotating-passphrase-number-{i}" for i in range(1, 6)]
    for new in passwords[1:]:
        assert _errors(new, staff_user) == []
        _change(staff_user, new)
    assert PasswordHistory.objects.filter(user=staff_user).count() == 5
    for recent in passwords[-5:]:
        assert _errors(recent, staff_user) == ["password_reused"], recent
    assert _errors(passwords[0], staff_user) == []  # the sixth-newest may come back
    assert all(h.startswith("argon2$") for h in PasswordHistory.objects.values_list("password_hash", flat=True))


def test_the_first_password_is_remembered_at_the_first_change(staff_user):
    _change(staff_user, "a-second-passphrase-here")
    assert _errors(PASSWORD, staff_user) == ["password_reused"]
    assert PasswordHistory.objects.filter(user=staff_user).count() == 2


def test_current_password_refused_even_without_history(staff_user):
    assert not PasswordHistory.objects.exists()  # an account created with a password has no history yet
    assert _errors(PASSWORD, staff_user) == ["password_reused"]


def test_password_change_is_audited_and_validated(staff_user):
    assert not AuditEvent.objects.filter(action="auth.password.change").exists()
    _change(staff_user, "an-entirely-new-phrase-9")
    event = AuditEvent.objects.get(action="auth.password.change")
    assert event.target_id == str(staff_user.pk)
    assert "an-entirely-new-phrase-9" not in str(event.after) + str(event.before) + event.message
    with pytest.raises(AppValidationError, match="too short") as caught:
        _change(staff_user, "short")
    assert caught.value.extra["fields"]["password"]


def test_the_validator_has_no_side_effect(staff_user):
    """Django calls every validator's ``password_changed`` from ``User.save()``: it must not write history
    or end sessions (that is the password service's work)."""
    session = UserSession.objects.create(user=staff_user, session_key_hash="c" * 64)
    staff_user.set_password("set-without-the-service-1")
    staff_user.save()
    pv.password_changed("set-without-the-service-1", staff_user)
    session.refresh_from_db()
    assert session.ended_at is None
    assert not PasswordHistory.objects.exists()
    assert not AuditEvent.objects.filter(action="auth.password.change").exists()


def test_the_service_ends_the_other_sessions(staff_user):
    here = UserSession.objects.create(user=staff_user, session_key_hash="d" * 64)
    there = UserSession.objects.create(user=staff_user, session_key_hash="e" * 64)
    assert _change(staff_user, "yet-another-passphrase-3") == 2
    for session in (here, there):
        session.refresh_from_db()
        assert session.end_reason == UserSession.EndReason.PASSWORD


def test_an_admin_setting_someones_password_goes_through_the_service(admin_session, staff_user):
    session = UserSession.objects.create(user=staff_user, session_key_hash="f" * 64)
    response = admin_session.post(
        reverse("admin:auth_user_password_change", args=[staff_user.pk]),
        {"password1": "set-by-a-super-admin-4", "password2": "set-by-a-super-admin-4"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    staff_user.refresh_from_db()
    assert staff_user.check_password("set-by-a-super-admin-4")
    assert PasswordHistory.objects.filter(user=staff_user).count() == 2
    session.refresh_from_db()
    assert session.end_reason == UserSession.EndReason.PASSWORD
    assert AuditEvent.objects.filter(action="auth.password.change", target_id=str(staff_user.pk)).exists()
