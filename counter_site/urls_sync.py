"""URLs of the sync port: peer sync and the node's internal routes, nothing public."""

from __future__ import annotations

from django.urls import include, path
from drf_spectacular.views import SpectacularJSONAPIView

urlpatterns = [
    path("", include("sync_app.urls")),
    # The sync port's own OpenAPI document: the peer-facing routes only.
    path("swagger", SpectacularJSONAPIView.as_view(urlconf="counter_site.urls_sync"), name="sync-schema"),
    path("", include("storage_app.internal_urls")),
]

handler400 = "counter_site.exceptions.json_bad_request"
handler404 = "counter_site.exceptions.json_not_found"
handler500 = "counter_site.exceptions.json_server_error"
