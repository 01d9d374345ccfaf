"""deploy/kubernetes: the manifests render with kustomize, validate against the Kubernetes schema, and
give each pod an environment the node accepts, as Kubernetes would fill it in."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from storage_app.core.config import load_config

PROJECT = Path(__file__).resolve().parents[2]
KUBERNETES_VERSION = "1.32"


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    return rendered_manifests()


def rendered_manifests() -> list[dict[str, Any]]:
    """``kubectl kustomize deploy/kubernetes``, parsed (the test skips where kubectl is missing)."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (it is not a Debian package): the manifests cannot be rendered here")
    output = subprocess.run(
        [kubectl, "kustomize", str(PROJECT / "deploy" / "kubernetes")], capture_output=True, text=True, check=True
    ).stdout
    return [document for document in yaml.safe_load_all(output) if document]


def of_kind(documents: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [document for document in documents if document["kind"] == kind]


def test_every_manifest_validates_against_the_schema_and_a_wrong_one_does_not(rendered: list[dict[str, Any]]) -> None:
    assert sorted(document["kind"] for document in rendered) == [
        "PodDisruptionBudget",
        "Secret",
        "Service",
        "Service",
        "StatefulSet",
    ]
    for document in rendered:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    (statefulset,) = of_kind(rendered, "StatefulSet")
    wrong = copy.deepcopy(statefulset)
    wrong["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["pat"] = "/readyz"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong, KUBERNETES_VERSION, strict=True)


def test_the_statefulset_runs_one_node_per_pod(rendered: list[dict[str, Any]]) -> None:
    (statefulset,) = of_kind(rendered, "StatefulSet")
    spec = statefulset["spec"]
    assert spec["podManagementPolicy"] == "Parallel" and spec["serviceName"] == "counter-sync"
    (container,) = spec["template"]["spec"]["containers"]
    env = {item["name"]: item for item in container["env"]}
    assert env["COUNTER_NODE_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.labels['apps.kubernetes.io/pod-index']"
    )
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["lifecycle"]["preStop"]["exec"]["command"][0] == "sleep"
    assert container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"]
    mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
    assert mounts["data"] == env["COUNTER_DATA_DIR"]["value"]
    assert spec["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    (secret,) = of_kind(rendered, "Secret")
    volumes = {volume["name"]: volume for volume in spec["template"]["spec"]["volumes"]}
    assert volumes["sync-token"]["secret"]["secretName"] == secret["metadata"]["name"]
    services = {service["metadata"]["name"]: service["spec"] for service in of_kind(rendered, "Service")}
    assert services["counter-sync"]["clusterIP"] == "None" and services["counter-sync"]["publishNotReadyAddresses"]
    assert of_kind(rendered, "PodDisruptionBudget")[0]["spec"]["maxUnavailable"] == 1


def pod_environment(statefulset: dict[str, Any], index: int, namespace: str, token_file: Path) -> dict[str, str]:
    """The environment Kubernetes gives pod ``index``: downward-API values, then $(VAR) references expanded."""
    name = f"{statefulset['metadata']['name']}-{index}"
    fields = {
        "metadata.name": name,
        "metadata.namespace": namespace,
        "metadata.labels['apps.kubernetes.io/pod-index']": str(index),
    }
    (container,) = statefulset["spec"]["template"]["spec"]["containers"]
    environment: dict[str, str] = {}
    for item in container["env"]:
        if "valueFrom" in item:
            value = fields[item["valueFrom"]["fieldRef"]["fieldPath"]]
        else:
            # Kubernetes expands $(NAME) from variables defined earlier in the list, and leaves others as they are.
            value = re.sub(r"\$\((\w+)\)", lambda match: environment.get(match[1], match[0]), item["value"])
        environment[item["name"]] = value
    mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
    assert environment["COUNTER_SYNC_TOKEN_FILE"].startswith(mounts["sync-token"] + "/")
    environment["COUNTER_SYNC_TOKEN_FILE"] = str(token_file)  # the Secret's key, mounted as a file
    return environment


def test_each_pod_gets_an_environment_the_node_accepts(rendered: list[dict[str, Any]], tmp_path: Path) -> None:
    (statefulset,) = of_kind(rendered, "StatefulSet")
    (secret,) = of_kind(rendered, "Secret")
    token_file = tmp_path / "token"
    token_file.write_text("a-token")
    assert "token" in secret["data"]
    pod_0 = "http://counter-0.counter-sync.prod.svc.cluster.local:3001"
    for index in range(3):
        config = load_config(pod_environment(statefulset, index, "prod", token_file))
        assert config.node_id == index
        assert config.advertise_url == f"http://counter-{index}.counter-sync.prod.svc.cluster.local:3001"
        assert config.seeds == (pod_0,), "every pod's seed is pod 0 (which skips itself)"
        assert config.host == "0.0.0.0" and config.sync_token == "a-token"
        assert config.node_id < config.max_slots


def test_the_image_installs_the_node_with_the_script_make_uses() -> None:
    dockerfile = (PROJECT / "deploy" / "kubernetes" / "Dockerfile").read_text()
    makefile = (PROJECT / "Makefile").read_text()
    assert "deploy/install-node.sh /opt/counter requirements-node.txt" in dockerfile
    assert "bash deploy/install-node.sh $(VENV) requirements.txt" in makefile
    requirements = (PROJECT / "requirements.txt").read_text().splitlines()
    assert "-r requirements-node.txt" in requirements
