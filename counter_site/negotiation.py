"""DRF's content negotiation, with a shortcut for what API clients send, and no 404 for ``?format=``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request

# Parsing the Accept header cost a quarter of a one-keyword read under DRF; reads now skip DRF
# (counter_site/plain_json.py), and writes and every other DRF response still take this shortcut.
_ANY = frozenset({None, "*/*"})


class ContentNegotiation(DefaultContentNegotiation):
    """No Accept header or ``*/*``, and no ``?format=``: the first renderer, as DRF would pick it."""

    def select_renderer(
        self, request: Request, renderers: Sequence[BaseRenderer], format_suffix: str | None = None
    ) -> Any:
        if (
            format_suffix is None
            and request.META.get("HTTP_ACCEPT") in _ANY
            and self.settings.URL_FORMAT_OVERRIDE not in request.query_params
        ):
            return renderers[0], renderers[0].media_type
        return super().select_renderer(request, renderers, format_suffix)

    def filter_renderers(self, renderers: Sequence[BaseRenderer], format: str) -> Any:
        """An unknown ``?format=`` is ignored (the Accept header decides) instead of DRF's bare 404.

        Every route would otherwise answer ``?format=anything`` with an error
        no client can act on, before the route's own checks.
        """
        matching = [renderer for renderer in renderers if renderer.format == format]
        return matching or list(renderers)
