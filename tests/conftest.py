from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from storage_app import services


class PortClient(APIClient):
    """A DRF test client whose requests arrive on a given port (the node routes by port)."""

    def __init__(self, port: int, **defaults: Any) -> None:
        super().__init__(**defaults)
        self.port = str(port)

    def generic(self, *args: Any, **extra: Any) -> Any:
        extra.setdefault("SERVER_PORT", self.port)
        return super().generic(*args, **extra)


@pytest.fixture(autouse=True)
def fresh_node(settings: Any, tmp_path: Path) -> Iterator[None]:
    """Every test starts from an empty store whose data directory is its own."""
    settings.COUNTER = dataclasses.replace(settings.COUNTER, data_dir=tmp_path / "data")
    services.reset_state()
    services.keywords.cache_clear()
    yield
    services.reset_state()
    services.keywords.cache_clear()


@pytest.fixture
def public_client(settings: Any) -> PortClient:
    return PortClient(settings.COUNTER_PUBLIC_PORT)


@pytest.fixture
def sync_client(settings: Any) -> PortClient:
    return PortClient(settings.COUNTER_SYNC_PORT)
