"""The chart installed for real, the operator run exactly as its pods would run it.

A cluster of its own (the session cluster already has a grove-operator and our webhook configurations,
which are cluster-scoped): `helm install` into namespace `grove-install` (not grove-system), the chart's
Deployment scheduled by the real scheduler onto the host node (localcluster/hostnode.py), where its two
pods run from this tree's image filesystem with the chart's ServiceAccount token, ConfigMap and emptyDir
mounted where the kubelet would put them, their readiness from the chart's probes; the apiserver calls the
chart's own webhook configurations through the chart's Service (service proxy). Workload pods run on KWOK
nodes, their grove-initc from the same image filesystem (the init runner's rootfs mode).

What the local cluster cannot reproduce, and how this stands in for it: docs/local-cluster.md.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from grove_api.operatorconfig import version
from localcluster import cluster as localcluster
from localcluster import hostnode
from localcluster.binaries import ensure_helm
from localcluster.state import ClusterInfo
from tests.kube import kubectl
from tools import image as image_tool
from tools.image import Rootfs
from tools.release import CHART

NAMESPACE = "grove-install"
RELEASE = "gp"
IMAGE = f"{image_tool.IMAGE_NAME}:{version()}"
WEBHOOK_CONFIGURATIONS = (
    "mutatingwebhookconfiguration/podcliqueset-defaulting-webhook",
    "mutatingwebhookconfiguration/pod-mutating-webhook",
    "validatingwebhookconfiguration/podcliqueset-validating-webhook",
    "validatingwebhookconfiguration/authorizer-webhook",
    "validatingwebhookconfiguration/clustertopology-validating-webhook",
)
# A PodCliqueSet whose worker clique starts after its leader: grove-initc must run and succeed.
ORDERED = """
apiVersion: grove.io/v1alpha1
kind: PodCliqueSet
metadata:
  name: {name}
spec:
  replicas: 1
  template:
    cliqueStartupType: CliqueStartupTypeExplicit
    cliques:
      - name: leader
        spec:
          replicas: 1
          podSpec:
            tolerations: [{{key: fake-node, operator: Exists}}]
            containers: [{{name: main, image: registry.example/serve:1}}]
      - name: worker
        spec:
          replicas: 2
          startsAfter: [leader]
          podSpec:
            tolerations: [{{key: fake-node, operator: Exists}}]
            containers: [{{name: main, image: registry.example/serve:1}}]
"""


@pytest.fixture(scope="module")
def install_cluster(
    tmp_path_factory: pytest.TempPathFactory, image_rootfs: Rootfs
) -> Iterator[tuple[ClusterInfo, Path]]:
    """A cluster without the local operator, its init runner running grove-initc from the image, and the
    host node; yields (cluster, host node work dir)."""
    state = tmp_path_factory.mktemp("install-cluster") / "state"
    pods_image = image_rootfs.for_pods(IMAGE)
    info = localcluster.up(state, nodes=3, operator=False, initc_images=[pods_image])
    work = tmp_path_factory.mktemp("install-hostnode")
    node = hostnode.start(info.kubeconfig, work, rootfs=[pods_image], lock_timeout=240.0)
    try:
        yield info, work
    finally:
        node.stop(deregister=True)
        localcluster.down(state)


def helm(info: ClusterInfo, *args: str) -> str:
    proc = subprocess.run(
        [str(ensure_helm()), "--kubeconfig", str(info.kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"helm {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def values_file(tmp: Path) -> Path:
    values = {
        "image": {"repository": image_tool.IMAGE_NAME, "tag": version(), "pullPolicy": "Never"},
        "nodeSelector": hostnode.POD_NODE_SELECTOR,
        "tolerations": [hostnode.POD_TOLERATION],
    }
    path = tmp / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def get(info: ClusterInfo, *args: str) -> Any:
    return json.loads(kubectl(info.kubeconfig, "get", "-o", "json", *args))


def lease_holder(info: ClusterInfo) -> str:
    lease = get(info, "-n", NAMESPACE, "lease", "grove-operator-leader-election")
    return str(lease["spec"].get("holderIdentity") or "")


def operator_pods(info: ClusterInfo) -> list[dict[str, Any]]:
    selector = f"app.kubernetes.io/instance={RELEASE},grove.io/operator-role=operator"
    return list(get(info, "-n", NAMESPACE, "pods", "-l", selector)["items"])


def ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions) and not pod[
        "metadata"
    ].get("deletionTimestamp")


def wait(what: str, check: Any, timeout: float = 180.0, interval: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last: {last!r}")


@pytest.fixture(scope="module")
def installed(
    install_cluster: tuple[ClusterInfo, Path], tmp_path_factory: pytest.TempPathFactory
) -> ClusterInfo:
    info, _ = install_cluster
    values = values_file(tmp_path_factory.mktemp("values"))
    helm(info, "install", RELEASE, str(CHART), "-n", NAMESPACE, "--create-namespace", "-f", str(values))
    kubectl(
        info.kubeconfig, "-n", NAMESPACE, "rollout", "status", "deployment/grove-operator", "--timeout=300s"
    )
    return info


def test_the_chart_runs_on_the_cluster_from_the_image(installed: ClusterInfo) -> None:
    info = installed
    pods = operator_pods(info)
    assert len(pods) == 2 and all(ready(p) for p in pods)
    assert {p["spec"]["nodeName"] for p in pods} == {hostnode.DEFAULT_NODE_NAME}
    # The operator injected its CA into the chart's own webhook configurations (auto mode).
    for name in WEBHOOK_CONFIGURATIONS:
        hook = get(info, name)["webhooks"][0]
        assert hook["clientConfig"].get("caBundle"), name
        assert hook["clientConfig"]["service"]["namespace"] == NAMESPACE
    holder = wait("a leader", lambda: lease_holder(info))
    assert any(p["metadata"]["name"] in holder for p in pods), holder


def test_a_podcliqueset_with_startup_order_runs_with_grove_initc_from_the_image(
    installed: ClusterInfo,
) -> None:
    info = installed
    kubectl(info.kubeconfig, "create", "namespace", "ordered")
    kubectl(info.kubeconfig, "-n", "ordered", "apply", "-f", "-", stdin=ORDERED.format(name="ordered"))
    # Admission went through the chart's webhooks: the defaulting webhook filled in the defaults.
    pcs = get(info, "-n", "ordered", "pcs", "ordered")
    assert pcs["spec"]["template"]["cliques"][0]["spec"]["minAvailable"] == 1
    kubectl(
        info.kubeconfig, "-n", "ordered", "wait", "--for=condition=Available", "pcs/ordered", "--timeout=240s"
    )
    workers = get(info, "-n", "ordered", "pods", "-l", "grove.io/podclique=ordered-0-worker")["items"]
    assert len(workers) == 2
    for pod in workers:
        (initc,) = pod["spec"]["initContainers"]
        assert initc["name"] == "grove-initc" and initc["image"] == IMAGE
        assert initc["command"] == ["grove-initc"]
        (status,) = pod["status"]["initContainerStatuses"]
        assert status["state"].get("terminated", {}).get("exitCode") == 0 or status.get("ready"), status


def test_the_other_replica_takes_over_when_the_leader_dies(installed: ClusterInfo) -> None:
    info = installed
    holder = wait("a leader", lambda: lease_holder(info))
    (leader,) = [p["metadata"]["name"] for p in operator_pods(info) if p["metadata"]["name"] in holder]
    kubectl(info.kubeconfig, "-n", NAMESPACE, "delete", "pod", leader, "--grace-period=0", "--force")
    new = wait("another leader", lambda: (h := lease_holder(info)) and leader not in h and h, timeout=120)
    assert leader not in new
    # The new leader's controllers work: a new PodCliqueSet gets its PodCliques.
    kubectl(info.kubeconfig, "create", "namespace", "after-failover")
    kubectl(info.kubeconfig, "-n", "after-failover", "apply", "-f", "-", stdin=ORDERED.format(name="later"))
    wait(
        "the new leader's PodCliques",
        lambda: len(get(info, "-n", "after-failover", "pclq")["items"]) == 2,
        timeout=120,
    )
    kubectl(
        info.kubeconfig, "-n", NAMESPACE, "rollout", "status", "deployment/grove-operator", "--timeout=300s"
    )


def webhook_service(info: ClusterInfo) -> tuple[str, int]:
    """The ClusterIP and port the apiserver calls the webhooks at."""
    ref = get(info, WEBHOOK_CONFIGURATIONS[0])["webhooks"][0]["clientConfig"]["service"]
    service = get(info, "-n", ref["namespace"], "service", ref["name"])
    return str(service["spec"]["clusterIP"]), int(ref.get("port") or 443)


def test_a_rolling_restart_is_no_admission_outage(installed: ClusterInfo) -> None:
    info = installed
    kubectl(info.kubeconfig, "create", "namespace", "rollout")
    outcomes: list[tuple[float, int, str]] = []
    failed_connects: list[tuple[float, str]] = []
    stop = threading.Event()

    def apply_loop() -> None:
        index = 0
        while not stop.is_set():
            manifest = ORDERED.format(name=f"r{index}")
            proc = subprocess.run(
                ["kubectl", "--kubeconfig", str(info.kubeconfig), "-n", "rollout", "apply", "-f", "-"],
                input=manifest,
                capture_output=True,
                text=True,
                timeout=60,
            )
            outcomes.append((time.monotonic(), proc.returncode, proc.stderr.strip()))
            index += 1

    def connect_loop(address: tuple[str, int]) -> None:
        """New connections to the webhook Service, as the apiserver opens them, tens a second. The apiserver
        mostly reuses pooled keep-alive connections, so the kubectl loop alone seldom catches the moment a
        stopping replica has closed its listener while the Service still sends it new connections; such a
        connection is refused, and the apiserver's webhook client does not retry that: an admission
        failure."""
        while not stop.is_set():
            try:
                socket.create_connection(address, timeout=10).close()
            except OSError as err:
                failed_connects.append((time.monotonic(), repr(err)))
            time.sleep(0.02)

    workers = [
        threading.Thread(target=apply_loop, daemon=True),
        threading.Thread(target=connect_loop, args=(webhook_service(info),), daemon=True),
    ]
    for worker in workers:
        worker.start()
    try:
        time.sleep(2)
        before = {p["metadata"]["name"] for p in operator_pods(info)}
        kubectl(info.kubeconfig, "-n", NAMESPACE, "rollout", "restart", "deployment/grove-operator")
        kubectl(
            info.kubeconfig,
            "-n",
            NAMESPACE,
            "rollout",
            "status",
            "deployment/grove-operator",
            "--timeout=300s",
        )
        after = {p["metadata"]["name"] for p in operator_pods(info) if ready(p)}
        assert len(after) == 2 and not before & after, "every replica was replaced"
        time.sleep(5)  # and a little while with the new replicas
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=90)
    failures = [o for o in outcomes if o[1] != 0]
    assert len(outcomes) >= 10, outcomes
    assert not failures, failures
    assert not failed_connects, f"new connections to the webhook Service failed: {failed_connects[:5]}"


def test_helm_uninstall_leaves_nothing_of_the_release(installed: ClusterInfo) -> None:
    info = installed
    # Workloads first: their objects belong to their PodCliqueSets, not to the release.
    for namespace in ("ordered", "after-failover", "rollout"):
        kubectl(info.kubeconfig, "delete", "namespace", namespace, "--wait=false", check=False)
    helm(info, "uninstall", RELEASE, "-n", NAMESPACE, "--wait")
    for name in WEBHOOK_CONFIGURATIONS:
        out = kubectl(info.kubeconfig, "get", name, check=False)
        assert "NotFound" in out, out
    labelled = f"app.kubernetes.io/instance={RELEASE}"
    cluster_kinds = (
        "clusterroles,clusterrolebindings,mutatingwebhookconfigurations,validatingwebhookconfigurations"
    )
    assert get(info, cluster_kinds, "-l", labelled)["items"] == []
    kinds = "deployments,replicasets,services,configmaps,secrets,serviceaccounts,roles,rolebindings,leases,poddisruptionbudgets"
    left = get(info, "-n", NAMESPACE, kinds)["items"]
    ours = [o for o in left if o["metadata"]["name"] not in {"default", "kube-root-ca.crt"}]
    assert ours == [], json.dumps([o["metadata"] for o in ours], indent=1)
    wait("the operator's pods gone", lambda: not get(info, "-n", NAMESPACE, "pods")["items"], timeout=120)
    # The CRDs stay, as Helm documents.
    crds = {c["metadata"]["name"] for c in get(info, "crds")["items"]}
    assert {"podcliquesets.grove.io", "podgangs.scheduler.grove.io"} <= crds
