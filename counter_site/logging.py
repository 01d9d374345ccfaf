"""Log records carry the node id, so the lines of a local cluster can be told apart.

``COUNTER_LOG_FORMAT=json`` writes one JSON object per line instead:
``{"time", "level", "node", "logger", "event", "fields"}``, where ``event`` is
the message and ``fields`` what the call passed as ``extra={"fields": {...}}``
(a peer's URL, an error), ready for a log shipper.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from typing import Any


class NodeFilter(logging.Filter):
    """Adds ``node_id`` to every record."""

    def __init__(self) -> None:
        super().__init__()
        self.node_id = os.environ.get("COUNTER_NODE_ID", "0").strip() or "0"

    def filter(self, record: logging.LogRecord) -> bool:
        record.node_id = self.node_id
        return True


class UnavailableIsNotAnError(logging.Filter):
    """Drops Django's error line for a 503: the node says so while it loads its state or shuts down.

    Those answers are expected (a readiness probe polls ``/readyz`` through
    every start) and carry a JSON message of their own; an ERROR line per probe
    would hide the errors that matter.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(record, "status_code", None) != 503


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__()
        self.node_id = os.environ.get("COUNTER_NODE_ID", "0").strip() or "0"

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "node": int(self.node_id) if self.node_id.isdigit() else self.node_id,
            "logger": record.name,
            "event": record.getMessage(),
            "fields": dict(getattr(record, "fields", None) or {}),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def formatter_config(log_format: str, text_format: str) -> dict[str, object]:
    """The ``formatters`` entry of a dictConfig for COUNTER_LOG_FORMAT."""
    if log_format == "json":
        return {"()": "counter_site.logging.JsonFormatter"}
    return {"format": text_format}


def gunicorn_logger_class() -> type:
    """gunicorn's logger, building no access-log line while its access logger drops them.

    gunicorn counts the access log as on whenever a logging configuration is
    given (ours is, for the node id and JSON), and then formats a line for
    every request before the logger's level discards it: about 5% of the
    worker's time on small writes.
    """
    from gunicorn.glogging import Logger

    class QuietAccessLogger(Logger):
        def setup(self, cfg: Any) -> None:
            super().setup(cfg)  # applies our logging configuration last
            enabled: bool = self._compute_access_log_enabled()
            self._access_log_enabled = enabled and self.access_log.isEnabledFor(logging.INFO)

    return QuietAccessLogger
