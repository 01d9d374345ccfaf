#!/usr/bin/env python
"""Django's command-line utility for the Counter node."""

from __future__ import annotations

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "counter_site.settings")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        settings.INSTALLED_APPS  # noqa: B018 - reading it loads and checks the configuration
    except ImproperlyConfigured as error:
        # One clear line instead of Django's "unknown command" fallback.
        sys.exit(f"counter: configuration error: {error}")
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
