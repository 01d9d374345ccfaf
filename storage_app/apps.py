from __future__ import annotations

from django.apps import AppConfig
from django.conf import settings


class StorageConfig(AppConfig):
    name = "storage_app"
    verbose_name = "Counter storage"

    def ready(self) -> None:
        # Only the serving process owns the store; management commands such as
        # runsync and dumpstate reach it over HTTP and must not load a copy.
        # load_snapshot() is idempotent (merge by max), so running ready() twice is harmless.
        if settings.COUNTER_SERVING:
            from storage_app import services

            services.load_snapshot()
