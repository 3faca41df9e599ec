"""Password rules: 12-128 characters, common list, similarity, no composition rules, last 5 not reused."""

from __future__ import annotations

import pytest
from django.contrib.auth import password_validation as pv
from django.core.exceptions import ValidationError

from ghostcrm.accounts.models import PasswordHistory
from ghostcrm.audit.models import AuditEvent
from tests.accounts.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def _errors(password, user=None) -> list[str]:
    try:
        pv.validate_password(password, user=user)
    except ValidationError as exc:
        return [e.code for e in exc.error_list]
    return []


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
        staff_user.set_password(new)
        staff_user.save()
    assert PasswordHistory.objects.filter(user=staff_user).count() == 5
    for recent in passwords[-5:]:
        assert _errors(recent, staff_user) == ["password_reused"], recent
    assert _errors(passwords[0], staff_user) == []  # the sixth-newest may come back
    assert all(h.startswith("argon2$") for h in PasswordHistory.objects.values_list("password_hash", flat=True))


def test_current_password_refused_even_without_history(staff_user):
    PasswordHistory.objects.all().delete()  # accounts created before the history existed
    assert _errors(PASSWORD, staff_user) == ["password_reused"]


def test_password_change_is_audited_but_first_password_is_not(staff_user):
    assert not AuditEvent.objects.filter(action="auth.password.change").exists()
    staff_user.set_password("an-entirely-new-phrase-9")
    staff_user.save()
    event = AuditEvent.objects.get(action="auth.password.change")
    assert event.target_id == str(staff_user.pk)
    assert "an-entirely-new-phrase-9" not in str(event.after) + str(event.before) + event.message
