"""What each role may do, as Django permissions (``app_label.action_model``).

Super admins have every permission (``is_superuser``). Support and billing staff can view everything;
support can also steer organisations (tenants app), billing can change everything in billing. Nobody but
a super admin manages accounts, system settings or integration secrets.
"""

from __future__ import annotations

from ghostcrm.accounts.models import Role

# role -> {app_label: allowed actions}; "view" on every app is granted to every staff role.
ROLE_GRANTS: dict[str, dict[str, frozenset[str]]] = {
    Role.SUPPORT: {app: frozenset({"add", "change", "lifecycle"}) for app in ("organizations", "tenants")},
    Role.BILLING: {"billing": frozenset({"add", "change", "delete", "finalize", "refund"})},
}


def role_allows(role: str, perm: str) -> bool:
    app_label, _, codename = perm.partition(".")
    action = codename.split("_", 1)[0]
    if action == "view":
        return True
    return action in ROLE_GRANTS.get(role, {}).get(app_label, frozenset())
