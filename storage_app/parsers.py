from __future__ import annotations

from typing import Any

from rest_framework.parsers import BaseParser


class PlainTextParser(BaseParser):
    """Declares text/plain, so the browsable API offers a form to post text.

    The keyword view reads the raw body itself (any Content-Type, as
    counter-app does), so this parser is never asked to parse.
    """

    media_type = "text/plain"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> str:
        return str(stream.read().decode("utf-8"))
