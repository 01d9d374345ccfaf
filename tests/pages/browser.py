"""Chromium for the page tests: Debian's binary, driven by Playwright where a test types and clicks."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

PROJECT_DIR = Path(__file__).resolve().parents[2]


def chromium() -> str:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.fail("Chromium is needed for the page tests: `make test` installs it (deploy/install-system-deps.sh)")
    return binary


def artifacts_dir() -> Path:
    """Where the page tests keep their screenshots: COUNTER_TEST_ARTIFACTS, or test-artifacts/ in the checkout."""
    directory = Path(os.environ.get("COUNTER_TEST_ARTIFACTS") or PROJECT_DIR / "test-artifacts")
    directory.mkdir(parents=True, exist_ok=True)
    return directory
