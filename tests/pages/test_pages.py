"""The pages a person opens, rendered by a real headless Chromium against a real node."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cluster.nodes import Node
from tests.pages.browser import chromium

pytestmark = [pytest.mark.cluster, pytest.mark.xdist_group("pages")]


def render(url: str, profile: Path, screenshot: Path | None = None) -> str:
    """The DOM of ``url`` after its scripts ran (and optionally a PNG of it)."""
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=15000",
        "--window-size=1280,1600",
    ]
    if screenshot is not None:
        subprocess.run(
            [chromium(), *flags, f"--screenshot={screenshot}", url], capture_output=True, timeout=120, check=True
        )
    result = subprocess.run([chromium(), *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_swagger_ui_renders_every_public_operation_from_the_node_alone(
    make_node: Callable[..., Node], tmp_path: Path
) -> None:
    node = make_node(0).start()
    shot = tmp_path / "swagger.png"
    dom = render(node.public_url + "/swagger/ui", tmp_path / "profile", screenshot=shot)
    # Rendered by Swagger UI's JavaScript from the node's own /swagger document:
    assert 'class="swagger-ui' in dom
    assert dom.count('class="opblock opblock-') == 6, (
        "GET /cluster, GET /history, GET and POST /keywords, GET /keywords/{keyword}, GET /top"
    )
    assert "/keywords/{keyword}" in dom and "/top" in dom
    assert "Counter" in dom
    assert shot.stat().st_size > 10_000
    assert node.stop() == 0


def test_browsable_api_shows_counts_and_a_form_to_post_text(make_node: Callable[..., Node], tmp_path: Path) -> None:
    node = make_node(0).start()
    node.post("fox fox cat")
    dom = render(node.public_url + "/keywords?keywords=fox&keywords=cat", tmp_path / "profile")
    assert "Keywords" in dom
    assert "&quot;fox&quot;" in dom or '"fox"' in dom
    assert "<textarea" in dom and 'name="_content"' in dom
    assert "text/plain" in dom
    assert node.stop() == 0
