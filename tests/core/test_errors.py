"""One conversion of Django's full_clean errors: every field at once, in the model's field order."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError as DjangoValidationError

from ghostcrm.audit.models import AuditArchive
from ghostcrm.core.errors import ValidationError, full_clean_or_raise, validation_error_from


def test_every_field_error_is_reported_at_once_in_field_order() -> None:
    archive = AuditArchive(first_sequence=1, last_sequence=2, event_count=2)  # six required fields left empty
    with pytest.raises(ValidationError) as caught:
        full_clean_or_raise(archive, validate_unique=False)
    fields = caught.value.extra["fields"]
    expected = ["created_at", "first_prev_hash", "last_hash", "file_name", "file_sha256", "key_id", "signature"]
    assert list(fields) == expected
    assert caught.value.code == "invalid"
    assert caught.value.message.startswith("The audit archive is not valid. created_at: This field cannot be null.")
    assert caught.value.message.count(": This field cannot be") == len(expected)


def test_errors_of_no_field_come_last_and_unknown_names_after_the_fields() -> None:
    raw = DjangoValidationError(
        {"__all__": ["The range is empty."], "signature": ["Bad."], "zzz": ["Odd."], "created_at": ["Late."]}
    )
    error = validation_error_from(raw, obj=AuditArchive())
    assert list(error.extra["fields"]) == ["created_at", "signature", "zzz", "__all__"]
    assert (
        error.message
        == "The audit archive is not valid. created_at: Late.; signature: Bad.; zzz: Odd.; The range is empty."
    )


def test_an_error_without_fields_is_kept_whole() -> None:
    error = validation_error_from(DjangoValidationError(["One.", "Two."]), obj=AuditArchive())
    assert error.extra["fields"] == {"__all__": ["One.", "Two."]}
    assert error.message.endswith("One. Two.")
