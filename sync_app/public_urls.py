"""The public port's routes of the sync side: the cluster as this node sees it."""

from __future__ import annotations

from django.urls import path

from sync_app import views

urlpatterns = [
    path("cluster", views.ClusterView.as_view(), name="cluster"),
]
