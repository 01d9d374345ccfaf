from __future__ import annotations

import logging
import os

from django.apps import AppConfig
from django.conf import settings

logger = logging.getLogger(__name__)


def _stop_worker(error: BaseException) -> None:
    """A node that cannot recover must not serve: exit with gunicorn's boot-error status.

    That stops gunicorn, which stops runnode; the log says why.
    """
    logger.critical("cannot start: %s", error)
    logging.shutdown()
    os._exit(3)


class StorageConfig(AppConfig):
    name = "storage_app"
    verbose_name = "Counter storage"

    def ready(self) -> None:
        # Only the serving process owns the store; management commands such as
        # runsync and dumpstate reach it over HTTP and must not load a copy. Loading
        # (snapshot, then log replay) runs in one background thread, so that the
        # worker answers /healthz and /readyz (503) while a large store loads.
        if settings.COUNTER_SERVING:
            from storage_app.node import current_node

            current_node().start_recovery(on_failure=_stop_worker)
