"""The dashboard in Debian's headless Chromium (driven by Playwright) against live nodes."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
import requests
from playwright.sync_api import Browser, Page

from tests.cluster.nodes import Node, start_cluster, wait_until
from tests.pages.browser import artifacts_dir

pytestmark = [pytest.mark.cluster, pytest.mark.xdist_group("pages")]

# Each row of the members table as the page shows it: the data-value of every cell, by field.
ROWS_SHOWN = """rows => rows.map(row => Object.fromEntries(
    [...row.cells].map(cell => [cell.dataset.field, cell.dataset.value ?? null])))"""


def open_dashboard(browser: Browser, node: Node) -> tuple[Page, list[str]]:
    """The dashboard of ``node`` in a new page, and the list its script errors are collected in."""
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto(node.public_url + "/")
    return page, errors


def cluster(node: Node, token: str | None = None) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = requests.get(node.public_url + "/cluster", headers=headers, timeout=5)
    response.raise_for_status()
    status: dict[str, Any] = response.json()
    return status


def members_match(page: Page, node: Node) -> bool:
    """Does the members table show what /cluster says: this node, then each peer's id, address, state, mode, lag?"""
    status = cluster(node)
    shown = page.eval_on_selector_all("#members tbody tr", ROWS_SHOWN)
    expected = [{"node_id": str(status["node"]["node_id"]), "mode": "self"}] + [
        {
            "node_id": str(peer["node_id"]),
            "url": peer["url"],
            "state": peer["state"],
            "mode": peer["mode"],
            "lag": str(peer["lag"]),
            "errors": str(peer["errors"]),
        }
        for peer in status["peers"]
    ]
    picked = [{field: row.get(field) for field in want} for row, want in zip(shown, expected, strict=False)]
    return len(shown) == len(expected) and picked == expected


def counts_are(node: Node, expected: dict[str, int]) -> bool:
    return node.counts(list(expected)) == expected


def figure(page: Page, name: str) -> str | None:
    value: str | None = page.get_attribute(f"#figure-{name}", "data-value")
    return value


def test_the_dashboard_shows_the_cluster_as_the_api_does_and_counts_what_is_posted_from_it(
    make_node: Callable[..., Node], browser: Browser
) -> None:
    nodes = start_cluster(make_node)
    nodes[1].post("the quick brown fox")
    nodes[2].post("fox dog fox")
    expected = {"fox": 3, "dog": 1, "quick": 1}
    wait_until(lambda: nodes[0].counts(list(expected)) == expected, 30, "node 0 to hold every count")
    wait_until(
        lambda: all(peer["state"] == "up" and peer["lag"] == 0 for peer in cluster(nodes[0])["peers"]),
        30,
        "node 0's peers up with no lag",
    )
    page, errors = open_dashboard(browser, nodes[0])

    # The figures and the members table match /cluster (read again until a refresh shows the same).
    wait_until(partial(members_match, page, nodes[0]), 20, "the members table to show what /cluster says")
    node = cluster(nodes[0])["node"]
    wait_until(lambda: figure(page, "keys") == str(cluster(nodes[0])["node"]["keys"]), 20, "the keys figure")
    assert figure(page, "slots") == str(node["slots"]) == "3"
    assert page.text_content("#node-id") == "0"
    assert page.text_content("#node-state") == "serving"
    peers = page.eval_on_selector_all("#members tbody tr", ROWS_SHOWN)[1:]
    assert all(int(peer["bytes_sent"]) > 0 and int(peer["bytes_received"]) > 0 for peer in peers), peers
    for peer in cluster(nodes[0])["peers"]:
        shown_at = next(float(row["last_success"]) for row in peers if row["node_id"] == str(peer["node_id"]))
        assert abs(shown_at - peer["last_success"]) < 10

    # The charts draw the node's history; the keys chart ends at the keys /history last sampled.
    def keys_chart_current() -> bool:
        points = requests.get(nodes[0].public_url + "/history", timeout=5).json()["points"]
        return int(page.get_attribute("#chart-keys", "data-points") or 0) >= 2 and page.get_attribute(
            "#chart-keys", "data-latest"
        ) == str(points[-1]["keys"])

    wait_until(keys_chart_current, 20, "the keys chart to show /history's samples")
    wait_until(lambda: float(page.get_attribute("#chart-sync", "data-max") or 0) > 0, 20, "sync traffic drawn")

    # A lookup typed into the box shows the counts the API gives.
    page.fill("#lookup-keywords", "Fox, dog  nothing-like-it")
    page.press("#lookup-keywords", "Enter")
    page.wait_for_selector('#lookup-result li[data-keyword="nothing-like-it"]', timeout=10_000)
    shown = page.eval_on_selector_all(
        "#lookup-result li", "items => items.map(item => [item.dataset.keyword, Number(item.dataset.count)])"
    )
    api = requests.get(
        nodes[0].public_url + "/keywords", params={"keywords": ["Fox", "dog", "nothing-like-it"]}, timeout=5
    ).json()
    assert shown == [[item["key"], item["count"]] for item in api] == [["Fox", 3], ["dog", 1], ["nothing-like-it", 0]]
    assert page.text_content('#lookup-result li[data-keyword="Fox"] strong') == "3"

    # A text posted from the page is counted once, on every node, and the lookup follows it.
    page.fill("#post-text", "dashboard posted dashboard fox")
    page.click("#post button")
    page.wait_for_selector("#post-result[data-tokens]", timeout=10_000)
    assert page.get_attribute("#post-result", "data-tokens") == "4"
    assert page.get_attribute("#post-result", "data-keywords") == "3"
    assert page.text_content("#post-result") == "Counted 4 tokens of 3 keywords."
    page.wait_for_selector('#lookup-result li[data-keyword="Fox"][data-count="4"]', timeout=10_000)
    after = {"dashboard": 2, "posted": 1, "fox": 4}
    for node_process in nodes:
        wait_until(partial(counts_are, node_process, after), 30, f"node {node_process.node_id} to count the post")
    wait_until(lambda: float(page.get_attribute("#chart-tokens", "data-max") or 0) > 0, 20, "the indexing drawn")

    shot = artifacts_dir() / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000
    assert errors == []
    for node_process in nodes:
        assert node_process.stop() == 0, node_process.log()[-3000:]


def test_under_tokens_the_dashboard_asks_for_them_and_then_reads_and_counts(
    make_node: Callable[..., Node], browser: Browser
) -> None:
    node = make_node(0, env={"COUNTER_PUBLIC_TOKEN": "write-secret", "COUNTER_PUBLIC_READ_TOKEN": "read-secret"})
    node.start(settled=False)  # alone, it counts in its own slot at once; /cluster needs the token
    page, errors = open_dashboard(browser, node)
    page.wait_for_selector("#read-token-row:not([hidden])", timeout=10_000)
    assert "COUNTER_PUBLIC_READ_TOKEN" in (page.text_content("#status") or "")
    assert page.is_hidden("#write-token-row")
    page.fill("#read-token", "read-secret")
    page.press("#read-token", "Enter")
    page.wait_for_selector("#node-id:text('0')", timeout=10_000)
    wait_until(lambda: page.is_hidden("#status"), 10, "the error line to go once reads work")

    page.fill("#post-text", "guarded words")
    page.click("#post button")
    page.wait_for_selector("#write-token-row:not([hidden])", timeout=10_000)
    assert "COUNTER_PUBLIC_TOKEN" in (page.text_content("#post-error") or "")
    page.fill("#write-token", "write-secret")
    page.press("#write-token", "Enter")
    page.click("#post button")
    page.wait_for_selector("#post-result[data-tokens='2']", timeout=10_000)
    counted = requests.get(
        node.public_url + "/keywords",
        params={"keywords": ["guarded"]},
        headers={"Authorization": "Bearer read-secret"},
        timeout=5,
    ).json()
    assert counted == [{"key": "guarded", "count": 1}], "the refused first try counted nothing"
    page.screenshot(path=str(artifacts_dir() / "dashboard-tokens.png"), full_page=True)
    # The refused requests are the only errors the page met (Chromium logs each 401).
    assert all("401" in error for error in errors), errors
    assert node.stop() == 0


# The top keywords as the page shows them: keyword (or hash), count, and the bar's share of the track.
TOP_SHOWN = """items => items.map(item => [
    item.dataset.keyword ?? item.dataset.hash,
    Number(item.dataset.count),
    Math.round(100 * item.querySelector('.bar').getBoundingClientRect().width
        / item.querySelector('.track').getBoundingClientRect().width)])"""


def top_api(node: Node, **params: Any) -> list[dict[str, Any]]:
    response = requests.get(node.public_url + "/top", params=params, timeout=5)
    response.raise_for_status()
    answer: list[dict[str, Any]] = response.json()
    return answer


def test_the_top_keywords_panel_draws_what_top_answers_and_filters_by_prefix(
    make_node: Callable[..., Node], browser: Browser
) -> None:
    node = make_node(0).start()
    node.post("fox fox fox fox dog dog cat Fowl")
    # A key from a counter-app push: listed by its hash, its text not known.
    unknown = 0x1234_5678_9ABC_DEF0
    response = requests.post(node.sync_url + "/sync", json=[{"hash_keyword": unknown, "totals": [0, 0, 2]}], timeout=5)
    assert response.status_code == 200, response.text
    page, errors = open_dashboard(browser, node)

    def shown() -> list[list[Any]]:
        rows: list[list[Any]] = page.eval_on_selector_all("#top-list li", TOP_SHOWN)
        return rows

    # Highest first, bars as long as the counts (the highest full width), ties by keyword, the hash after them.
    expected = [["fox", 4, 100], ["dog", 2, 50], [f"0x{unknown:016x}", 2, 50], ["cat", 1, 25], ["fowl", 1, 25]]
    wait_until(lambda: shown() == expected, 20, "the top keywords panel to draw /top")
    assert [[row.get("key") or row.get("hash"), row["count"]] for row in top_api(node)] == [r[:2] for r in expected]
    assert page.get_attribute(f'#top-list li[data-hash="0x{unknown:016x}"] .name', "title") is not None

    # Typing a prefix narrows the list to what /top?prefix= answers (normalised: Fo finds fox and fowl).
    page.fill("#top-prefix", "Fo")
    wait_until(lambda: shown() == [["fox", 4, 100], ["fowl", 1, 25]], 20, "the list for the prefix Fo")
    assert [row["key"] for row in top_api(node, prefix="Fo")] == ["fox", "fowl"]
    page.fill("#top-prefix", "zebra")
    page.wait_for_selector("#top-empty:not([hidden])", timeout=10_000)
    assert page.text_content("#top-empty") == "No keyword counted starts with “zebra”."

    # A text counted elsewhere shows up at the next refresh.
    page.fill("#top-prefix", "")
    node.post("zebra " * 9)
    wait_until(lambda: shown()[:2] == [["zebra", 9, 100], ["fox", 4, 44]], 20, "zebra on top after a refresh")
    page.screenshot(path=str(artifacts_dir() / "dashboard-top.png"), full_page=True)
    assert errors == []
    assert node.stop() == 0
