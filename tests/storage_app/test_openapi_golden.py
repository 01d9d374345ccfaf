"""The committed OpenAPI document (docs/openapi-public.json) is what the node serves.

After an intended API change, regenerate it with:
    python manage.py spectacular --urlconf counter_site.urls_public --format openapi-json \
        --file docs/openapi-public.json
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import PortClient

GOLDEN = Path(__file__).resolve().parents[2] / "docs" / "openapi-public.json"


def test_served_schema_matches_the_committed_one(public_client: PortClient) -> None:
    served = public_client.get("/swagger").json()
    assert served == json.loads(GOLDEN.read_text()), f"the public API changed: regenerate {GOLDEN.name} (see above)"
