"""The public port's routes of the storage side: count, read, health."""

from __future__ import annotations

from django.urls import path, re_path

from storage_app import views

urlpatterns = [
    path("keywords", views.KeywordsView.as_view(), name="keywords"),
    # A keyword may contain "/" under the fields tokenizer, hence the regex.
    re_path(r"^keywords/(?P<keyword>.+)$", views.KeywordDetailView.as_view(), name="keyword-detail"),
    path("top", views.TopView.as_view(), name="top"),
    path("healthz", views.HealthView.as_view(), name="healthz"),
    path("readyz", views.ReadyView.as_view(), name="readyz"),
]
