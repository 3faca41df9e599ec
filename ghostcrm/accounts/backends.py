from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import ModelBackend

from ghostcrm.accounts.permissions import role_allows


class RoleBackend(ModelBackend):
    """E-mail and password authentication; permissions come from the user's role."""

    def has_perm(self, user_obj: Any, perm: str, obj: Any = None) -> bool:
        if not user_obj.is_active or not getattr(user_obj, "is_staff", False):
            return False
        return bool(user_obj.is_superuser) or role_allows(user_obj.role, perm)

    def has_module_perms(self, user_obj: Any, app_label: str) -> bool:
        return bool(user_obj.is_active and getattr(user_obj, "is_staff", False))
