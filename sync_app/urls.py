from __future__ import annotations

from django.urls import path

from sync_app import views

urlpatterns = [
    path("sync", views.LegacySyncView.as_view(), name="sync-legacy"),
]
