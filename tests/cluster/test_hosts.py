"""Three nodes as three hosts: network namespaces with their own address, host name and /etc/hosts,
joined by a bridge; each node runs with exactly the environment the Kubernetes StatefulSet gives its pod.

A host's link is cut (``ip link set ... down``) while both sides take writes, then restored: every
node ends with the exact totals. Needs root and ``ip netns`` (skips with the reason otherwise); every
namespace, link, file and process it makes is removed at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.cluster.nodes import Node, wait_until
from tests.deploy.test_kubernetes import pod_environment, rendered_manifests

pytestmark = [pytest.mark.cluster, pytest.mark.xdist_group("hosts")]

NAMESPACE = "test"  # the Kubernetes namespace the pods' DNS names are in
HOSTS = 3
MOUNTS = (Path("/var/lib/counter"), Path("/etc/counter"))  # the pod's data volume and token Secret
ETC_NETNS = Path("/etc/netns")


def sh(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True, text=True)


class Hosts:
    """Network namespaces standing in for machines, on one bridge the test process reaches too."""

    def __init__(self, count: int) -> None:
        tag = os.getpid() % 10000
        self.octet = 100 + os.getpid() % 100
        self.bridge = f"cbr{tag}"
        self.names = [f"counter-{index}" for index in range(count)]
        self.netns = {name: f"cntr{tag}-{index}" for index, name in enumerate(self.names)}
        self.veth = {name: f"cv{tag}h{index}" for index, name in enumerate(self.names)}
        self.address = {name: f"10.213.{self.octet}.{index + 1}" for index, name in enumerate(self.names)}
        self.made: list[Callable[[], None]] = []

    def up(self) -> None:
        sh("ip", "link", "add", self.bridge, "type", "bridge")
        self.made.append(lambda: sh("ip", "link", "del", self.bridge))
        sh("ip", "addr", "add", f"10.213.{self.octet}.254/24", "dev", self.bridge)
        sh("ip", "link", "set", self.bridge, "up")
        hosts_file = "127.0.0.1 localhost\n" + "".join(
            f"{self.address[name]} {name} {name}.counter-sync.{NAMESPACE}.svc.cluster.local\n" for name in self.names
        )
        for name in self.names:
            netns, veth = self.netns[name], self.veth[name]
            sh("ip", "netns", "add", netns)
            self.made.append(partial(sh, "ip", "netns", "del", netns))
            if not ETC_NETNS.exists():
                ETC_NETNS.mkdir()
                self.made.append(partial(shutil.rmtree, ETC_NETNS, ignore_errors=True))
            etc = ETC_NETNS / netns
            etc.mkdir()
            self.made.append(partial(shutil.rmtree, etc, ignore_errors=True))
            (etc / "hosts").write_text(hosts_file)  # `ip netns exec` mounts it over /etc/hosts
            sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns)
            sh("ip", "link", "set", veth, "master", self.bridge, "up")
            sh("ip", "-n", netns, "addr", "add", f"{self.address[name]}/24", "dev", "eth0")
            sh("ip", "-n", netns, "link", "set", "eth0", "up")
            sh("ip", "-n", netns, "link", "set", "lo", "up")

    def down(self) -> None:
        for undo in reversed(self.made):
            with contextlib.suppress(subprocess.CalledProcessError, OSError):
                undo()

    def cut(self, name: str) -> None:
        sh("ip", "link", "set", self.veth[name], "down")

    def restore(self, name: str) -> None:
        sh("ip", "link", "set", self.veth[name], "up")

    def run_as(self, name: str, data_dir: Path, token_dir: Path) -> list[str]:
        """The command prefix that runs a program on host ``name``: its network, host name, pod volumes."""
        script = 'hostname "$0" && mount --bind "$1" /var/lib/counter && mount --bind "$2" /etc/counter && shift 2'
        return [
            "ip", "netns", "exec", self.netns[name],
            "unshare", "--uts", "--mount", "--propagation", "private", "--",
            "sh", "-c", script + ' && exec "$@"', name, str(data_dir), str(token_dir),
        ]  # fmt: skip

    def request(self, name: str, method: str, url: str, body: str = "") -> Any:
        """An HTTP request made from inside host ``name`` (the test process cannot reach a cut host)."""
        code = (
            "import json, sys, urllib.request\n"
            "request = urllib.request.Request(sys.argv[1], data=sys.argv[2].encode() or None, method=sys.argv[3])\n"
            "print(urllib.request.urlopen(request, timeout=10).read().decode())\n"
        )
        result = subprocess.run(
            ["ip", "netns", "exec", self.netns[name], sys.executable, "-c", code, url, body, method],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return json.loads(result.stdout)


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("unshare") is None:
        pytest.skip("separate hosts need root, iproute2's `ip netns` and util-linux's `unshare`")
    made_mounts = [path for path in MOUNTS if not path.exists()]
    hosts = Hosts(HOSTS)
    try:
        for path in made_mounts:
            path.mkdir(parents=True)  # mount points for the pods' volumes (empty; only ever mounted over)
        try:
            hosts.up()
        except subprocess.CalledProcessError as error:
            pytest.skip(f"network namespaces cannot be made here: {error.stderr.strip()}")
        yield hosts
    finally:
        hosts.down()
        for path in made_mounts:
            with contextlib.suppress(OSError):
                path.rmdir()


def counts_inside(hosts: Hosts, name: str, words: list[str]) -> dict[str, int]:
    query = "&".join(f"keywords={word}" for word in words)
    answer = hosts.request(name, "GET", f"http://127.0.0.1:3000/keywords?{query}")
    return {item["key"]: item["count"] for item in answer}


def test_three_hosts_converge_exactly_across_a_cut_link(
    hosts: Hosts, make_node: Callable[..., Node], tmp_path: Path
) -> None:
    statefulset = next(document for document in rendered_manifests() if document["kind"] == "StatefulSet")
    token_dir = tmp_path / "secret"
    token_dir.mkdir()
    (token_dir / "token").write_text("a-long-shared-token")
    nodes = []
    for index, name in enumerate(hosts.names):
        environment = pod_environment(statefulset, index, NAMESPACE, Path("/etc/counter/token"))
        node = make_node(index, env=environment, workdir=tmp_path / name)
        data_dir = tmp_path / name / "volume"
        data_dir.mkdir()
        node.address = hosts.address[name]
        node.public_port = int(environment["COUNTER_PUBLIC_PORT"])
        node.sync_port = int(environment["COUNTER_SYNC_PORT"])
        node.command_prefix = hosts.run_as(name, data_dir, token_dir)
        nodes.append(node)
    for node in nodes:
        # Exactly the pod's environment: drop what the test harness adds for loopback nodes.
        for variable in ("COUNTER_SYNC_INTERVAL", "COUNTER_DUMP_INTERVAL", "COUNTER_THREADS"):
            node.env.pop(variable)
        node.start(wait=False)
    for node in nodes:
        node.wait_ready(timeout=90)
        node.wait_settled(timeout=90)

    for node in nodes:
        for _ in range(30):
            node.post(f"host{node.node_id} shared")
    before = {"host0": 30, "host1": 30, "host2": 30, "shared": 90}
    wait_until(lambda: all(node.counts(list(before)) == before for node in nodes), 60, f"every host to count {before}")
    peers = requests.get(nodes[1].public_url + "/cluster", timeout=5).json()["peers"]
    assert {peer["url"] for peer in peers} >= {
        f"http://counter-0.counter-sync.{NAMESPACE}.svc.cluster.local:3001",
        f"http://counter-2.counter-sync.{NAMESPACE}.svc.cluster.local:3001",
    }, "node 1 was told of node 2 by node 0, at its advertised name"

    cut = hosts.names[2]
    hosts.cut(cut)
    for node in nodes[:2]:
        for _ in range(20):
            node.post("major")
    for _ in range(25):
        hosts.request(cut, "POST", "http://127.0.0.1:3000/keywords", "minor")
    wait_until(lambda: all(node.counts(["major"]) == {"major": 40} for node in nodes[:2]), 30, "the two hosts to agree")
    assert nodes[0].counts(["minor"]) == {"minor": 0}, "the cut is real"
    assert counts_inside(hosts, cut, ["major", "minor"]) == {"major": 0, "minor": 25}

    hosts.restore(cut)
    after = {**before, "major": 40, "minor": 25}
    wait_until(lambda: all(node.counts(list(after)) == after for node in nodes), 90, f"every host to count {after}")
    print(f"three hosts: before the cut {before}; during it 40 writes on two hosts, 25 on the cut one; after: {after}")
    for node in nodes:
        assert node.stop() == 0, node.log()[-3000:]
