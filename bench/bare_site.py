"""The framework's own ceiling for reads: one bare Django view that returns a constant JSON.

Served by gunicorn with the node's worker settings (see ``bench.perf``):

    gunicorn bench.bare_site:application --workers 1 --worker-class gthread --threads 8

No middleware, no DRF, no store: what a request costs Django and gunicorn alone.
"""

from __future__ import annotations

from django.conf import settings
from django.core.wsgi import get_wsgi_application
from django.http import HttpRequest, JsonResponse
from django.urls import path

settings.configure(
    DEBUG=False,
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=[],
    INSTALLED_APPS=[],
    SECRET_KEY="bench-only",  # the constant view has nothing to protect
)

RESPONSE = [{"key": "the", "count": 1}]


def constant(request: HttpRequest) -> JsonResponse:
    return JsonResponse(RESPONSE, safe=False)


urlpatterns = [path("keywords", constant)]

application = get_wsgi_application()
