"""Writes of the accounts app, one module per domain: ``passwords``, ``signin``, ``mfa``, ``sessions``,
``lockout``, ``invitations`` and ``demo``. Import from those modules.

Re-exported here only for the callers outside the accounts app that still use the old flat names (remove
each line once its callers import the domain module):
- ``invitation_create``: ``tenants/provisioning.py`` (the provisioning step that invites the tenant's admin);
- ``demo_admin_create``: ``scripts/demo.py`` (``make demo``).
"""

from ghostcrm.accounts.services.demo import demo_admin_create
from ghostcrm.accounts.services.invitations import invitation_create

__all__ = ["demo_admin_create", "invitation_create"]
