"""Signals other areas connect to.

``invitation_accepted(sender, invitation, password_hash)`` is sent when a ``tenant_admin`` invitation is
accepted, inside the acceptance transaction (a receiver that raises undoes the acceptance, and the link still
works): ``invitation`` is the accepted ``Invitation`` (its
``organization_id`` names the organisation), ``password_hash`` the chosen password hashed with Django's
``make_password`` (Argon2). Provisioning stores the hash on the CRM admin user inside the tenant schema; the
control plane never writes to the tenant database itself.
"""

from __future__ import annotations

from django.dispatch import Signal

invitation_accepted = Signal()
