from __future__ import annotations

from django.urls import path, re_path

from storage_app import views

urlpatterns = [
    path("cluster", views.ClusterView.as_view(), name="cluster"),
    path("keywords", views.KeywordsView.as_view(), name="keywords"),
    # A keyword may contain "/" under the fields tokenizer, hence the regex.
    re_path(r"^keywords/(?P<keyword>.+)$", views.KeywordDetailView.as_view(), name="keyword-detail"),
]
