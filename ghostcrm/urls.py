from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from ghostcrm.core.views import favicon_view, root_view

admin.site.site_header = "GhostCRM control plane"
admin.site.site_title = "GhostCRM"
admin.site.index_title = "Control plane"
# There is no public site at "/": hide the admin's "View site" link, which would lead to a 404.
admin.site.site_url = None

urlpatterns = [
    path("", include("operations.urls")),  # /healthz, /readyz, /metrics (docs/operations.md)
    path("", root_view, name="root"),
    path("favicon.ico", favicon_view, name="favicon"),
    path("admin/rq/", include("django_rq.urls")),
    path("accounts/", include("ghostcrm.accounts.urls")),
    # Organisations moved from the tenants app to ghostcrm.organizations: old admin links still lead there.
    re_path(
        r"^admin/tenants/organization/(?P<rest>.*)$",
        RedirectView.as_view(url="/admin/organizations/organization/%(rest)s", query_string=True, permanent=True),
    ),
    path("admin/", admin.site.urls),
    path("billing/", include("billing.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
    path("api/v1/backups/", include("operations.api_urls")),  # before tenants' catch-all under /api/
    path("api/", include("tenants.api.urls")),
]
