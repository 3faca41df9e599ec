"""Writes for client organisations, one module per domain: ``requests`` (a new client), ``lifecycle``
(transitions and the lifecycle actions) and ``operations`` (the step records). Entry points (admin, API,
commands, jobs) call the functions re-exported here.
"""

from tenants.services.lifecycle import (
    ALLOWED_TRANSITIONS,
    LIFECYCLE_ACTIONS,
    LIVE_STATUSES,
    LOGIN_BY_STATUS,
    LoginChange,
    deprovisioning_enqueue,
    lifecycle_actions_for,
    organization_deprovision,
    organization_note_transient,
    organization_provisioning_claim,
    organization_resume,
    organization_retry,
    organization_select_for_update,
    organization_suspend,
    organization_transition,
    organization_transition_locked,
    provisioning_enqueue,
    provisioning_enqueue_on_commit,
)
from tenants.services.operations import operation_next_attempt, operation_record, operations_abandon
from tenants.services.requests import (
    IdempotencyKeyReused,
    organization_request,
    organization_request_preview,
    organization_validate_request,
)

__all__ = [
    "ALLOWED_TRANSITIONS",
    "LIFECYCLE_ACTIONS",
    "LIVE_STATUSES",
    "LOGIN_BY_STATUS",
    "IdempotencyKeyReused",
    "LoginChange",
    "deprovisioning_enqueue",
    "lifecycle_actions_for",
    "operation_next_attempt",
    "operation_record",
    "operations_abandon",
    "organization_deprovision",
    "organization_note_transient",
    "organization_provisioning_claim",
    "organization_request",
    "organization_request_preview",
    "organization_resume",
    "organization_retry",
    "organization_select_for_update",
    "organization_suspend",
    "organization_transition",
    "organization_transition_locked",
    "organization_validate_request",
    "provisioning_enqueue",
    "provisioning_enqueue_on_commit",
]
