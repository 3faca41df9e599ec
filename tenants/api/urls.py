from __future__ import annotations

from django.urls import path, re_path

from tenants.api import views

app_name = "api"

urlpatterns = [
    path("v1/organizations/", views.OrganizationListCreateView.as_view(), name="organization-list"),
    path("v1/organizations/<str:organization_id>/", views.OrganizationDetailView.as_view(), name="organization-detail"),
    path("v1/organizations/<str:organization_id>/retry/", views.organization_retry_view, name="organization-retry"),
    path(
        "v1/organizations/<str:organization_id>/suspend/", views.organization_suspend_view, name="organization-suspend"
    ),
    path("v1/organizations/<str:organization_id>/resume/", views.organization_resume_view, name="organization-resume"),
    path(
        "v1/organizations/<str:organization_id>/deprovision/",
        views.organization_deprovision_view,
        name="organization-deprovision",
    ),
    path("v1/operations/<str:operation_id>/", views.OperationDetailView.as_view(), name="operation-detail"),
    # Last: every other URL under /api/ is a JSON 404 (before APPEND_SLASH could redirect a POST).
    re_path(r"^(?P<path>.*)$", views.api_not_found, name="not-found"),
]
