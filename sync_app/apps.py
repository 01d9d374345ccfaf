from __future__ import annotations

from django.apps import AppConfig
from django.conf import settings


class SyncConfig(AppConfig):
    name = "sync_app"
    verbose_name = "Counter replication"

    def ready(self) -> None:
        # The change journal listens to the serving process's store from the start.
        if settings.COUNTER_SERVING:
            from sync_app.sync_state import current_sync

            current_sync()
