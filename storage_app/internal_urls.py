from __future__ import annotations

from django.urls import path

from storage_app import internal_views

urlpatterns = [
    path("internal/state", internal_views.StateView.as_view(), name="internal-state"),
    path("internal/dump", internal_views.DumpView.as_view(), name="internal-dump"),
    path("internal/load", internal_views.LoadView.as_view(), name="internal-load"),
    path("internal/top", internal_views.TopView.as_view(), name="internal-top"),
    path("internal/drain", internal_views.DrainView.as_view(), name="internal-drain"),
]
