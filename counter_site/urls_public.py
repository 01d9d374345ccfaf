"""URLs of the public port."""

from __future__ import annotations

from django.urls import include, path
from drf_spectacular.views import SpectacularJSONAPIView, SpectacularSwaggerView

from counter_site.dashboard import ApiRootView, HistoryView
from counter_site.metrics import metrics_view

urlpatterns = [
    path("", ApiRootView.as_view(), name="api-root"),
    path("", include("sync_app.public_urls")),
    path("", include("storage_app.urls")),
    path("history", HistoryView.as_view(), name="history"),
    path("metrics", metrics_view, name="metrics"),
    path("swagger", SpectacularJSONAPIView.as_view(urlconf="counter_site.urls_public"), name="schema"),
    path("swagger/ui", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
]

handler400 = "counter_site.exceptions.json_bad_request"
handler404 = "counter_site.exceptions.json_not_found"
handler500 = "counter_site.exceptions.json_server_error"
