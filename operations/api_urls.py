from __future__ import annotations

from django.urls import path

from operations import api

app_name = "operations-api"

urlpatterns = [
    path("", api.BackupListView.as_view(), name="backup-list"),
    path("restore/", api.RestoreView.as_view(), name="backup-restore"),
]
