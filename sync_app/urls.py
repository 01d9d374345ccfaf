from __future__ import annotations

from django.urls import path

from sync_app import internal_views, views

urlpatterns = [
    path("sync", views.LegacySyncView.as_view(), name="sync-legacy"),
    path("v1/sync", views.NativeSyncView.as_view(), name="sync-native"),
    path("internal/sync/hello", internal_views.HelloView.as_view()),
    path("internal/sync/changes", internal_views.ChangesView.as_view()),
    path("internal/sync/merge", internal_views.MergeView.as_view()),
    path("internal/sync/keys", internal_views.KeysView.as_view()),
    path("internal/sync/digests", internal_views.DigestsView.as_view()),
    path("internal/sync/buckets", internal_views.BucketsView.as_view()),
    path("internal/sync/wait", internal_views.WaitView.as_view()),
    path("internal/sync/peers", internal_views.PeerReportView.as_view()),
    path("internal/sync/leave", internal_views.LeaveView.as_view()),
    path("internal/sync/forget", internal_views.ForgetView.as_view()),
    path("internal/sync/status", internal_views.StatusView.as_view()),
]
