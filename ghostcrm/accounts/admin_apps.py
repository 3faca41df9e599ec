from django.contrib.admin.apps import AdminConfig


class GhostAdminConfig(AdminConfig):
    """django.contrib.admin with our OTP-enforcing site as ``admin.site``: every app's ``admin.site.register``
    (ours and third parties') lands on it, so no registration is lost."""

    default_site = "ghostcrm.accounts.admin_site.GhostAdminSite"
