"""URLs of the sync port: peer sync and the node's internal routes, nothing public."""

from __future__ import annotations

from django.urls import include, path

urlpatterns = [
    path("", include("sync_app.urls")),
    path("", include("storage_app.internal_urls")),
]

handler400 = "counter_site.exceptions.json_bad_request"
handler404 = "counter_site.exceptions.json_not_found"
handler500 = "counter_site.exceptions.json_server_error"
