from django.contrib import admin
from django.urls import include, path

admin.site.site_header = "GhostCRM control plane"
admin.site.site_title = "GhostCRM"
admin.site.index_title = "Control plane"

urlpatterns = [
    path("admin/rq/", include("django_rq.urls")),
    path("admin/", admin.site.urls),
]
