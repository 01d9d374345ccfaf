"""GET /top on real nodes: cluster-wide answers with each keyword's text, after restarts and kills too."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import requests

from storage_app.core.keywords import keyword_key, tokenize_words
from tests.cluster.nodes import Node, crash, manage, start_cluster, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.xdist_group("cluster")]

TEXTS_ON_NODE_0 = [
    "The quick brown fox jumps over the lazy dog; the dog sleeps.",
    "Über alles: the café, the caffè and the cafeteria",
]
TEXTS_ON_NODE_1 = [
    "the fox and the hound, the end",
    "Cafés open early; the fox does not",
]


def top(node: Node, **params: Any) -> list[dict[str, Any]]:
    response = requests.get(node.public_url + "/top", params=params, timeout=10)
    assert response.status_code == 200, response.text
    answer: list[dict[str, Any]] = response.json()
    return answer


def expected_top(counts: Counter[str], n: int, prefix: str = "") -> list[dict[str, Any]]:
    rows = sorted(
        ((word, count) for word, count in counts.items() if word.startswith(prefix)),
        key=lambda row: (-row[1], row[0].encode()),
    )
    return [{"key": word, "count": count} for word, count in rows[:n]]


def test_the_third_node_of_a_cluster_answers_top_and_prefix_queries_exactly(make_node: Callable[..., Node]) -> None:
    nodes = start_cluster(make_node)
    counts: Counter[str] = Counter()
    for node, texts in ((nodes[0], TEXTS_ON_NODE_0), (nodes[1], TEXTS_ON_NODE_1)):
        for text in texts:
            node.post(text)
            counts.update(tokenize_words(text))
    third = nodes[2]
    wait_until(lambda: top(third, n=1000) == expected_top(counts, 1000), 30, "node 2 to list every keyword exactly")
    assert (
        top(third, n=3)
        == expected_top(counts, 3)
        == [
            {"key": "the", "count": 10},
            {"key": "fox", "count": 3},
            {"key": "and", "count": 2},  # and, dog: 2 each, by keyword
        ]
    )
    # Ties by keyword; the prefix is normalised like a lookup (Caf matches café, cafés, caffè, cafeteria).
    assert top(third, n=10, prefix="Caf") == expected_top(counts, 10, "caf")
    assert [row["key"] for row in top(third, n=2, prefix="caf")] == ["cafeteria", "caffè"]  # code point order
    assert top(third, prefix="zzz") == []
    assert top(third) == expected_top(counts, 10)  # n defaults to 10

    # A node restarted from its snapshot still knows every text; so does one killed (the log holds them).
    assert third.stop() == 0, third.log()
    third.start()
    assert top(third, n=1000) == expected_top(counts, 1000)
    crash(nodes[0])
    nodes[0].start()
    assert top(nodes[0], n=1000) == expected_top(counts, 1000)


def test_a_killed_lone_node_gets_its_texts_back_from_the_log(make_node: Callable[..., Node]) -> None:
    # Snapshots only once an hour: every text must come back from the log.
    node = make_node(0, {"COUNTER_DUMP_INTERVAL": "3600"}).start()
    node.post("alpha beta beta gamma")
    node.post("Beta delta")
    crash(node)
    node.start()
    assert top(node, n=10) == [
        {"key": "beta", "count": 3},
        {"key": "alpha", "count": 1},
        {"key": "delta", "count": 1},
        {"key": "gamma", "count": 1},
    ]


def test_a_key_from_a_counter_app_push_is_listed_by_hash_until_a_native_peer_knows_its_text(
    make_node: Callable[..., Node],
) -> None:
    ours = make_node(0).start()
    ours.post("zebra apple")
    # counter-app's full-state push: its own slot (2) of "zebra" and of a keyword no node has seen.
    body = [
        {"hash_keyword": keyword_key("zebra"), "totals": [0, 0, 5]},
        {"hash_keyword": keyword_key("quagga"), "totals": [0, 0, 5]},
    ]
    response = requests.post(ours.sync_url + "/sync", json=body, timeout=10)
    assert response.status_code == 200, response.text
    quagga_hash = f"0x{keyword_key('quagga'):016x}"
    assert top(ours) == [
        {"key": "zebra", "count": 6},
        {"key": None, "hash": quagga_hash, "count": 5},
        {"key": "apple", "count": 1},
    ]
    assert top(ours, prefix="q") == []  # a keyword without a known text never matches a prefix

    # A native peer that counts "quagga" tells this node its text with the change.
    peer = make_node(1, {"COUNTER_SEEDS": ours.sync_url}).start()
    peer.post("quagga")
    wait_until(
        lambda: top(ours)[0] == {"key": "quagga", "count": 6},
        30,
        "the native peer's text of quagga to reach node 0",
    )
    assert top(ours, prefix="q") == [{"key": "quagga", "count": 6}]


def test_bad_top_queries_get_a_clear_400_and_topkeywords_prints_the_table(make_node: Callable[..., Node]) -> None:
    node = make_node(0, {"COUNTER_MAX_TOP": "50"}).start()
    node.post("one two two three three three")
    for params, message in (
        ({"n": "0"}, "n=0 is out of range: ask for 1 to 50"),
        ({"n": "51"}, "n=51 is out of range"),
        ({"n": "ten"}, "is not a whole number"),
        ({"n": "9" * 5000}, "is out of range"),
        ({"n": ["1", "2"]}, "at most once"),
        ({"prefix": "x" * 1025}, "A prefix of 1025 characters"),
    ):
        response = requests.get(node.public_url + "/top", params=params, timeout=10)
        assert response.status_code == 400, (params, response.text)
        assert response.json()["code"] == "invalid_top_query"
        assert message in response.json()["detail"]

    result = manage("topkeywords", "--n", "2", env=node.env, cwd=node.workdir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["rank  count  keyword", "   1      3  three", "   2      2  two"]
    result = manage("topkeywords", "--n", "99", env=node.env, cwd=node.workdir)
    assert result.returncode != 0 and "n=99 is out of range" in result.stderr

    assert node.stop() == 0, node.log()
    result = manage("topkeywords", "--prefix", "T", env=node.env, cwd=node.workdir)
    assert result.returncode == 0, result.stderr
    assert "not running" in result.stderr
    assert result.stdout.splitlines()[1:] == ["   1      3  three", "   2      2  two"]
