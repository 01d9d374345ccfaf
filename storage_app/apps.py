from __future__ import annotations

from django.apps import AppConfig
from django.conf import settings


class StorageConfig(AppConfig):
    name = "storage_app"
    verbose_name = "Counter storage"

    def ready(self) -> None:
        # Only the serving process owns the store; management commands such as
        # runsync and dumpstate reach it over HTTP and must not load a copy.
        # Loading (snapshot, then log replay) runs in one background thread, so
        # that the worker answers /healthz and /readyz (503) while a large store
        # loads; start_recovery() starts it at most once per process.
        if settings.COUNTER_SERVING:
            from storage_app import services

            services.start_recovery()
