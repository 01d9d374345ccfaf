"""gunicorn settings for a node (``python manage.py runnode`` starts gunicorn with them).

One worker process with threads: the G-Counter store lives in the worker's
memory, so a second worker would be a second, diverging store. Threads serve
requests concurrently; the store's lock keeps them consistent. The worker
class reads requests without a thread until they have fully arrived.
"""

from __future__ import annotations

import math
import os
from typing import Any

from counter_site.logging import formatter_config, gunicorn_logger_class
from storage_app.core.config import load_config

_config = load_config(os.environ)
_host = f"[{_config.host}]" if ":" in _config.host else _config.host

bind = [f"{_host}:{_config.public_port}", f"{_host}:{_config.sync_port}"]
workers = 1
# gthread that hands a thread only whole requests (slow clients wait in its
# main loop, not in a thread): see counter_site/worker.py.
worker_class = "counter_site.worker.RequestBufferingWorker"
threads = _config.threads
# gunicorn wants whole seconds; the worker applies COUNTER_KEEPALIVE_TIMEOUT itself.
keepalive = max(1, math.ceil(_config.keepalive_timeout))
timeout = 60
graceful_timeout = 15
# Room for GET /keywords with a hundred keywords or more in the query string.
limit_request_line = 8190
accesslog = None
errorlog = "-"
logger_class = gunicorn_logger_class()
loglevel = _config.log_level
proc_name = f"counter-node-{_config.node_id}"
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "node": formatter_config(
            _config.log_format, f"%(asctime)s node={_config.node_id} %(levelname)s gunicorn: %(message)s"
        ),
    },
    # gunicorn's own defaults name these two handlers; ours replace them.
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "node"},
        "error_console": {"class": "logging.StreamHandler", "formatter": "node"},
    },
    "loggers": {
        "gunicorn.error": {"handlers": ["error_console"], "level": _config.log_level.upper(), "propagate": False},
        # One line per request would drown the cluster's log; the access log stays off.
        "gunicorn.access": {"handlers": ["console"], "level": "WARNING", "propagate": False},
    },
}
# Several nodes run side by side on one machine; gunicorn's control socket
# (one fixed path per user) would be shared by all of them.
control_socket_disable = True


def worker_exit(server: Any, worker: Any) -> None:
    """Last dump in the worker itself, after its final request: nothing served is left unwritten."""
    try:
        from storage_app.node import current_node

        result = current_node().shut_down()
    except Exception:  # the worker is exiting; say why the dump failed, don't hide the exit
        server.log.exception("final dump failed")
        return
    if result.written:
        server.log.info("final dump: %d keys, %d bytes", result.keys, result.size_bytes)
