"""The audit log's list fits a 1366 px screen: the target is one column, cut with a tooltip."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from ghostcrm.audit.admin import TARGET_CHARS
from ghostcrm.audit.services import audit_record

pytestmark = pytest.mark.django_db


def test_a_long_target_is_cut_with_the_whole_text_as_tooltip(admin_session: Any) -> None:
    long_name = "Extraordinarily Long Organisation Name Limited, Trading Internationally"
    audit_record(action="tests.target", message="x", target_type="organizations.organization", target_repr=long_name)
    page = admin_session.get(reverse("admin:audit_auditevent_changelist")).content.decode()
    full = f"organizations.organization: {long_name}"
    assert f'title="{full}"' in page
    assert f"{full[:TARGET_CHARS].rstrip()}…" in page
    assert "column-target_type" not in page  # type and name share one column
