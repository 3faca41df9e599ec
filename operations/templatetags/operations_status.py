"""``{% operations_panel %}``: the last backup and restore drill, for the provisioning dashboard."""

from __future__ import annotations

from typing import Any

from django import template

from operations import selectors
from operations.models import Outcome

register = template.Library()


@register.inclusion_tag("operations/panel.html")
def operations_panel() -> dict[str, Any]:
    backup, drill = selectors.last_backup(), selectors.last_drill()
    return {
        "backup": backup,
        "drill": drill,
        "backup_failed": backup is not None and backup.outcome == Outcome.FAILURE,
        "drill_failed": drill is not None and drill.outcome == Outcome.FAILURE,
        "failures_last_day": selectors.recent_backup_failures(),
    }
