"""System settings of the operations area (editable in the admin, read with ``setting_value``)."""

from __future__ import annotations

from ghostcrm.core.system_settings import SettingSpec, register


def register_all() -> None:
    register(
        SettingSpec("backups.keep_daily", int, 7, "Tenant and main-database backups kept: newest per day.", 0, 366),
        SettingSpec("backups.keep_weekly", int, 4, "Backups kept: newest per ISO week, after the daily ones.", 0, 520),
        SettingSpec("backups.keep_monthly", int, 12, "Backups kept: newest per month, after the weekly ones.", 0, 240),
        SettingSpec("backups.max_age_hours", int, 36, "Readiness fails when the newest backup is older.", 1, 24 * 60),
        SettingSpec("backups.drill_sample", int, 3, "Recent tenant backups restored by each restore drill.", 1, 100),
        SettingSpec("retention.ledger_failures_days", int, 90, "Template-ledger failure rows kept (days).", 1, 3650),
        SettingSpec("retention.operations_days", int, 180, "Operation rows kept before archival (days).", 1, 3650),
        SettingSpec("retention.idempotency_hours", int, 24, "Idempotency records kept (hours).", 1, 24 * 30),
        SettingSpec("retention.webhook_events_days", int, 30, "Processed webhook events kept (days).", 1, 3650),
        SettingSpec(
            "retention.usage_readings_days", int, 35, "Usage readings kept in full before one per day.", 1, 3650
        ),
        SettingSpec("retention.audit_days", int, 365, "Audit events kept before archival (days).", 30, 36500),
        SettingSpec("readiness.queue_depth_max", int, 1000, "Readiness fails when a queue holds more jobs.", 1, 10**7),
        SettingSpec("readiness.oldest_job_max_seconds", int, 900, "Readiness fails when a job waits longer.", 1, 10**6),
        SettingSpec(
            "readiness.reconciler_max_age_seconds", int, 600, "Readiness fails when the reconciler is quiet.", 60, 10**6
        ),
    )
