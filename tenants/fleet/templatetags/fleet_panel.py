"""``{% fleet_servers_panel %}``: the per-server panel of the provisioning dashboard."""

from __future__ import annotations

from typing import Any

from django import template

from tenants.fleet.selectors import server_statuses

register = template.Library()


@register.inclusion_tag("fleet/servers_panel.html", takes_context=True)
def fleet_servers_panel(context: template.Context) -> dict[str, Any]:
    request = context.get("request")
    user = getattr(request, "user", None)
    return {
        "statuses": server_statuses(),
        "can_view": bool(user is not None and user.has_perm("fleet.view_tenantserver")),
    }
