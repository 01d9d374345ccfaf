"""WSGI entry point of a node: the process that owns the store.

gunicorn runs it with one worker process and several threads (see
``counter_site/gunicorn_conf.py``), because the store lives in this process.
"""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "counter_site.settings")
# Only the serving process loads the snapshot (storage_app.apps.StorageConfig.ready).
os.environ["COUNTER_SERVING"] = "1"

django_application = get_wsgi_application()

# Plain one-text writes skip Django's request machinery; everything else is Django's.
from counter_site.fast_writes import FastKeywordWrites  # noqa: E402 - needs Django set up

application = FastKeywordWrites(django_application)

# The dashboard's charts show the last minutes as soon as a page opens.
from counter_site.dashboard import start_sampling  # noqa: E402 - needs the application set up

start_sampling()
