"""Django settings for a Counter node.

Every knob is a COUNTER_* environment variable, read and checked by
``storage_app.core.config.load_config``; a bad value stops the process with a
message naming the variable. The node keeps no database: its state is the
in-memory store of ``storage_app`` and its snapshot file.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from storage_app.core.config import ConfigError, load_config

BASE_DIR = Path(__file__).resolve().parent.parent

try:
    COUNTER = load_config(os.environ)
except ConfigError as error:
    raise ImproperlyConfigured(str(error)) from None

# Set by wsgi.py: only the serving process loads the snapshot into its store.
COUNTER_SERVING = os.environ.get("COUNTER_SERVING") == "1"

# Nothing is signed or stored in sessions; a per-process key is enough.
SECRET_KEY = os.environ.get("COUNTER_SECRET_KEY") or secrets.token_urlsafe(50)
DEBUG = False
# Nodes are addressed by whatever name or address their peers and users use.
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = [
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "storage_app",
    "sync_app",
]

MIDDLEWARE = [
    "counter_site.middleware.CollectAfterLargeBodies",
    "counter_site.middleware.PortRoutingMiddleware",
    "counter_site.middleware.PublicStaticFilesMiddleware",
]

ROOT_URLCONF = "counter_site.urls_public"
SYNC_URLCONF = "counter_site.urls_sync"
WSGI_APPLICATION = "counter_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # Our templates first: they rebrand DRF's browsable API.
        "DIRS": [BASE_DIR / "counter_site" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]

DATABASES: dict[str, dict[str, str]] = {}

# Bodies are read by the views themselves, against COUNTER_MAX_BODY_BYTES and
# COUNTER_MAX_SYNC_BODY_BYTES, so that an oversize body gets a 413 in JSON.
DATA_UPLOAD_MAX_MEMORY_SIZE = None

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
# WhiteNoise serves DRF's and Swagger UI's files straight from the installed
# packages: the node needs no collectstatic step and no CDN.
WHITENOISE_USE_FINDERS = True

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": [],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "counter_site.negotiation.ContentNegotiation",
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "UNAUTHENTICATED_USER": None,
    "EXCEPTION_HANDLER": "counter_site.exceptions.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Counter",
    "DESCRIPTION": (
        "A replicated keyword-occurrence counter. POST text to count its keywords; "
        "GET a keyword's count, summed over every node of the cluster."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"node": {"()": "counter_site.logging.NodeFilter"}},
    "formatters": {
        "node": {"format": "%(asctime)s node=%(node_id)s %(levelname)s %(name)s: %(message)s"},
    },
    "handlers": {
        "stderr": {"class": "logging.StreamHandler", "formatter": "node", "filters": ["node"]},
    },
    "root": {"handlers": ["stderr"], "level": COUNTER.log_level.upper()},
    "loggers": {
        # Django logs every 4xx as a warning; our JSON errors already say what went wrong.
        "django.request": {"level": "ERROR"},
        "urllib3": {"level": "WARNING"},
    },
}
