"""The host node on the real control plane: pods that really run (chroot in an image's filesystem, their own
network namespace) on a node the real scheduler picks, a Deployment the real controller manager keeps at
two Available replicas, a Service reached at its ClusterIP through the service proxy's NAT rules (from the
host and from its own pods), readiness from real probes, restarts, deletion (also while the host node is
down), and nothing left behind when it stops.

Each test starts its own host node process (one per machine: a second test session waits for the lock)
and deletes the Node at the end, so the session cluster is as it was.
"""

from __future__ import annotations

import asyncio
import functools
import json
import socket
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from localcluster import hostnode, machine, nodes, podnet, serviceproxy
from localcluster.images import ImageRootfs
from localcluster.serviceproxy import Backend, ServicePort
from localcluster.state import ClusterInfo
from tests.e2e.rootfs import IMAGE, python_rootfs
from tests.waiting import until

# The first run on a machine builds the image filesystem (tests/e2e/rootfs.py, ~80 s) in a fixture.
pytestmark = pytest.mark.timeout(600)
LOCK_WAIT = 240.0  # another session's host node may hold the machine
NODE = hostnode.DEFAULT_NODE_NAME
CIDR = IPv4Network(hostnode.DEFAULT_POD_CIDR)
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"

# Run in the container: who it is, what it was told, and what the apiserver says about its token; then
# serve that over HTTP (exec: the server is PID 1, as in a real container).
WEB_SCRIPT = f"""set -e
mkdir -p /tmp/www
id -u > /tmp/www/uid
echo "$POD_NAME $POD_NAMESPACE $POD_IP" > /tmp/www/env
cat {SA_DIR}/namespace > /tmp/www/namespace
python3 /etc/app/whoami.py > /tmp/www/whoami
exec python3 -m http.server 8080 --directory /tmp/www
"""
WHOAMI = f"""import json, os, ssl, urllib.request
sa = "{SA_DIR}"
url = "https://%s:%s/apis/authentication.k8s.io/v1/selfsubjectreviews" % (
    os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"])
body = json.dumps({{"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}}).encode()
headers = {{"Authorization": "Bearer " + open(sa + "/token").read(), "Content-Type": "application/json"}}
context = ssl.create_default_context(cafile=sa + "/ca.crt")
info = json.load(urllib.request.urlopen(urllib.request.Request(url, body, headers), context=context))
user = info["status"]["userInfo"]
print(json.dumps({{"username": user["username"], "pod": user["extra"]["authentication.kubernetes.io/pod-name"][0]}}))
"""


class HostNode:
    """Starts and stops the host node process of one test; the Node is deleted at the end."""

    def __init__(self, cluster: ClusterInfo, rootfs: Path, work_dir: Path) -> None:
        self.cluster, self.rootfs, self.work_dir = cluster, rootfs, work_dir
        self.handle: hostnode.HostNodeProcess | None = None

    async def start(self) -> None:
        image = ImageRootfs(IMAGE, self.rootfs)
        self.handle = await asyncio.to_thread(
            hostnode.start, self.cluster.kubeconfig, self.work_dir, rootfs=[image], lock_timeout=LOCK_WAIT
        )

    async def stop(self, deregister: bool = False) -> None:
        """Stop the process (if running); with `deregister`, delete the Node too."""
        handle, self.handle = self.handle, None
        if handle is not None:
            await asyncio.to_thread(handle.stop, 60.0, deregister)
        elif deregister:
            await hostnode.delete_node(self.cluster.kubeconfig, NODE)

    def log(self) -> str:
        return (self.work_dir / f"{hostnode.NAME}.log").read_text(errors="replace")[-4000:]

    def container_log(self, namespace: str, pod: str, container: str) -> str:
        path = self.work_dir / hostnode.LOGS_DIR / f"{namespace}_{pod}_{container}.log"
        return path.read_text(errors="replace") if path.exists() else ""


@pytest.fixture
async def host(cluster: ClusterInfo, tmp_path: Path) -> AsyncIterator[HostNode]:
    rootfs = await asyncio.to_thread(python_rootfs)
    node = HostNode(cluster, rootfs, tmp_path / "hostnode")
    await node.start()
    try:
        yield node
    finally:
        await node.stop(deregister=True)
        if hostnode.leftovers(node.work_dir):
            await asyncio.to_thread(hostnode.cleanup, node.work_dir)


def plain(api: client.ApiClient, obj: Any) -> dict[str, Any]:
    data: dict[str, Any] = api.sanitize_for_serialization(obj)
    return data


async def read_pod(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return plain(api, await client.CoreV1Api(api).read_namespaced_pod(name, namespace))
    except ApiException as err:
        if err.status == 404:
            return None
        raise


async def pods_of(api: client.ApiClient, namespace: str, app: str) -> list[dict[str, Any]]:
    found = await client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=f"app={app}")
    return [plain(api, p) for p in found.items]


def condition(obj: dict[str, Any], kind: str) -> str | None:
    return next(
        (c["status"] for c in obj.get("status", {}).get("conditions") or () if c["type"] == kind), None
    )


async def node_ready(api: client.ApiClient) -> bool:
    node = plain(api, await client.CoreV1Api(api).read_node(NODE))
    return nodes.is_ready(node)


def http_get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read().decode()


# Run in a pod's network namespace (with the host's files): who serves each of `times` requests to a
# ClusterIP, and whether another ClusterIP refuses a connection.
FROM_POD = """import socket, sys, urllib.request
address, times, closed = sys.argv[1], int(sys.argv[2]), sys.argv[3]
for _ in range(times):
    print(urllib.request.urlopen(f"http://{address}/env", timeout=5).read().decode().split()[0])
try:
    socket.create_connection((closed, 80), 5)
except ConnectionRefusedError:
    print("refused")
"""


def from_pod(uid: str, address: str, times: int, closed: str) -> list[str]:
    argv = ["ip", "netns", "exec", podnet.netns_name(uid), sys.executable, "-c", FROM_POD]
    proc = subprocess.run(
        [*argv, address, str(times), closed], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_service_rules_are_valid_iptables_restore_input() -> None:
    """What the proxy writes, parsed and checked by iptables itself (`--test` commits nothing)."""
    machine.ensure_commands(hostnode.REQUIRED_COMMANDS)
    endpoints = (Backend("10.244.250.2", 9443), Backend("10.244.250.3", 9443))
    text = serviceproxy.rules(
        [
            ServicePort("10.96.1.1", 443, "ns/svc:https", endpoints),
            ServicePort("10.96.1.6", 80, "ns/gone", ()),
        ]
    )
    proc = subprocess.run(
        ["iptables-restore", "-w", "--noflush", "--test"], input=text, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr


def web_deployment(name: str) -> dict[str, Any]:
    field = [
        ("POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
        ("POD_IP", "status.podIP"),
    ]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name, "tier": "web"}},
                "spec": {
                    "nodeSelector": dict(hostnode.POD_NODE_SELECTOR),
                    "tolerations": [dict(hostnode.POD_TOLERATION)],
                    "terminationGracePeriodSeconds": 2,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 65534,
                        "runAsGroup": 65534,
                        "fsGroup": 65534,
                    },
                    "containers": [
                        {
                            "name": "web",
                            "image": IMAGE,
                            "command": ["sh", "-c", WEB_SCRIPT],
                            "ports": [{"name": "http", "containerPort": 8080}],
                            "env": [
                                {"name": n, "valueFrom": {"fieldRef": {"fieldPath": f}}} for n, f in field
                            ],
                            "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
                            "volumeMounts": [{"name": "app", "mountPath": "/etc/app"}],
                        }
                    ],
                    # The ServiceAccount admission plugin adds the kube-api-access projected volume (token,
                    # kube-root-ca.crt, namespace) at SA_DIR, as on any cluster.
                    "volumes": [{"name": "app", "configMap": {"name": f"{name}-app"}}],
                },
            },
        },
    }


async def test_deployment_on_the_host_node_serves_through_its_cluster_ip(
    host: HostNode, api_client: client.ApiClient, namespace: str
) -> None:
    core, apps = client.CoreV1Api(api_client), client.AppsV1Api(api_client)
    await until(
        "the host node Ready (lease, status, not-ready taint gone)", lambda: node_ready(api_client), 60
    )
    name = "web"
    config_map: Any = {"metadata": {"name": f"{name}-app"}, "data": {"whoami.py": WHOAMI}}
    await core.create_namespaced_config_map(namespace, config_map)
    deployment: Any = web_deployment(name)
    await apps.create_namespaced_deployment(namespace, deployment)
    # A pod of the same tier that never gets ready: the Service selects it, but it must get no traffic.
    odd: Any = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "odd", "labels": {"app": "odd", "tier": "web"}},
    }
    odd["spec"] = dict(web_deployment(name)["spec"]["template"]["spec"])
    odd["spec"]["containers"] = [
        {
            **odd["spec"]["containers"][0],
            "readinessProbe": {"httpGet": {"path": "/never", "port": "http"}, "periodSeconds": 1},
        }
    ]
    await core.create_namespaced_pod(namespace, odd)
    ports = [{"name": "http", "port": 80, "targetPort": "http"}]
    service: Any = {"metadata": {"name": name}, "spec": {"selector": {"tier": "web"}, "ports": ports}}
    cluster_ip = (await core.create_namespaced_service(namespace, service)).spec.cluster_ip
    only_odd: Any = {"metadata": {"name": "odd"}, "spec": {"selector": {"app": "odd"}, "ports": ports}}
    odd_ip = (await core.create_namespaced_service(namespace, only_odd)).spec.cluster_ip

    async def available() -> bool:
        d = plain(api_client, await apps.read_namespaced_deployment(name, namespace))
        return condition(d, "Available") == "True" and d["status"].get("availableReplicas") == 2

    try:
        await until("the Deployment Available with 2 replicas", available, 120)
    except BaseException:
        pods = await pods_of(api_client, namespace, name)
        logs = [host.container_log(namespace, p["metadata"]["name"], "web") for p in pods]
        print(host.log(), json.dumps([p.get("status") for p in pods], indent=1), *logs, sep="\n")
        raise

    pods = await pods_of(api_client, namespace, name)
    assert len(pods) == 2
    for pod in pods:
        status = pod["status"]
        assert pod["spec"]["nodeName"] == NODE
        assert IPv4Address(status["podIP"]) in CIDR and status["hostIP"] == str(CIDR.network_address + 1)
        assert status["phase"] == "Running" and status["startTime"]
        assert (
            condition(pod, "Ready")
            == condition(pod, "ContainersReady")
            == condition(pod, "Initialized")
            == "True"
        )
        (web,) = status["containerStatuses"]
        assert web["ready"] and web["started"] and web["restartCount"] == 0 and "running" in web["state"]
        assert web["image"] == IMAGE and web["containerID"].startswith("hostnode://")
    by_name = {p["metadata"]["name"]: p for p in pods}

    # Through the Service's ClusterIP (the service proxy), from the host, as a client in the cluster would.
    code, _ = await asyncio.to_thread(http_get, f"http://{cluster_ip}/")
    assert code == 200
    _, uid = await asyncio.to_thread(http_get, f"http://{cluster_ip}/uid")
    assert uid.strip() == "65534"  # runAsUser
    _, env = await asyncio.to_thread(http_get, f"http://{cluster_ip}/env")
    pod_name, pod_namespace, pod_ip = env.split()
    assert pod_namespace == namespace and by_name[pod_name]["status"]["podIP"] == pod_ip
    _, served_namespace = await asyncio.to_thread(http_get, f"http://{cluster_ip}/namespace")
    assert served_namespace == namespace
    # The pod's projected token is a real one, bound to the pod; the pod reached the apiserver at 10.96.0.1.
    whoami = json.loads((await asyncio.to_thread(http_get, f"http://{cluster_ip}/whoami"))[1])
    assert whoami["username"] == f"system:serviceaccount:{namespace}:default" and whoami["pod"] in by_name
    assert any("GET /uid" in host.container_log(namespace, n, "web") for n in by_name)

    # Readiness decides who gets traffic: the odd pod runs (its server answers its probe with 404) but is
    # never Ready, so no connection goes to it, and its own Service refuses connections.
    odd_pod = await read_pod(api_client, namespace, "odd")
    assert (
        odd_pod is not None
        and odd_pod["status"]["phase"] == "Running"
        and condition(odd_pod, "Ready") == "False"
    )
    for _ in range(12):
        served_by = (await asyncio.to_thread(http_get, f"http://{cluster_ip}/env"))[1].split()[0]
        assert served_by in by_name
    assert "GET /never" in host.container_log(namespace, "odd", "web")
    with pytest.raises(ConnectionRefusedError):
        await asyncio.to_thread(socket.create_connection, (odd_ip, 80), 5)
    # From the pods themselves: each reaches both, itself included (a hairpin connection, masqueraded),
    # and the odd Service refuses them too.
    for pod in pods:
        seen = await asyncio.to_thread(from_pod, pod["metadata"]["uid"], cluster_ip, 16, odd_ip)
        assert set(seen[:-1]) == set(by_name) and seen[-1] == "refused", (pod["metadata"]["name"], seen)
    await core.delete_namespaced_pod("odd", namespace)

    # A deleted pod is stopped, its network removed, its deletion finished; the ReplicaSet replaces it.
    victim = pods[0]
    victim_name, victim_uid = victim["metadata"]["name"], victim["metadata"]["uid"]
    await core.delete_namespaced_pod(victim_name, namespace)
    assert await until("the deleted pod gone", lambda: _gone(api_client, namespace, victim_name), 30)
    assert not podnet.netns_path(victim_uid).exists()

    async def replaced() -> bool:
        current = {p["metadata"]["name"] for p in await pods_of(api_client, namespace, name)}
        return victim_name not in current and len(current) == 2 and await available()

    await until("a replacement pod, the Deployment Available again", replaced, 60)
    code, _ = await asyncio.to_thread(http_get, f"http://{cluster_ip}/")
    assert code == 200

    await apps.delete_namespaced_deployment(name, namespace)
    await until("the Deployment's pods gone", lambda: _no_pods(api_client, namespace, name), 60)
    await until("the odd pod gone", lambda: _gone(api_client, namespace, "odd"), 30)
    await host.stop()
    assert hostnode.leftovers(host.work_dir) == []
    assert condition(plain(api_client, await core.read_node(NODE)), "Ready") == "False"


async def _gone(api: client.ApiClient, namespace: str, name: str) -> bool:
    return await read_pod(api, namespace, name) is None


async def _no_pods(api: client.ApiClient, namespace: str, app: str) -> bool:
    return not await pods_of(api, namespace, app)


def bare_pod(name: str, containers: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    for container in containers:
        container.setdefault("image", IMAGE)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "nodeSelector": dict(hostnode.POD_NODE_SELECTOR),
            "tolerations": [dict(hostnode.POD_TOLERATION)],
            "terminationGracePeriodSeconds": 1,
            "containers": containers,
            **spec,
        },
    }


async def test_init_containers_restarts_probes_and_deletion_while_down(
    host: HostNode, api_client: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api_client)
    await until("the host node Ready", lambda: node_ready(api_client), 60)
    secret: Any = {"metadata": {"name": "creds"}, "stringData": {"value": "s3cret"}}
    await core.create_namespaced_secret(namespace, secret)
    work = {"name": "work", "mountPath": "/work"}
    crasher = bare_pod(
        "crasher",
        [
            {
                "name": "main",
                "command": ["sh", "-c", "test -f /work/init-was-here; sleep 1; exit 3"],
                "volumeMounts": [work],
            }
        ],
        initContainers=[
            {
                "name": "setup",
                "image": IMAGE,
                "command": ["sh", "-c", "touch /work/init-was-here"],
                "volumeMounts": [work],
            }
        ],
        volumes=[{"name": "work", "emptyDir": {}}],
    )
    unhealthy = bare_pod(
        "unhealthy",
        [
            {
                "name": "main",
                "command": ["sleep", "3600"],
                "livenessProbe": {"tcpSocket": {"port": 9}, "periodSeconds": 1, "failureThreshold": 2},
            }
        ],
    )
    check = 'test "$VALUE" = s3cret && test "$(cat /secret/value)" = s3cret'
    steady = bare_pod(
        "steady",
        [
            {
                "name": "main",
                "command": ["sleep", "3600"],
                "env": [{"name": "VALUE", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "value"}}}],
                "volumeMounts": [{"name": "creds", "mountPath": "/secret"}],
                "readinessProbe": {"exec": {"command": ["sh", "-c", check]}, "periodSeconds": 1},
            }
        ],
        volumes=[{"name": "creds", "secret": {"secretName": "creds"}}],
    )
    manifests: list[Any] = [crasher, unhealthy, steady]
    for manifest in manifests:
        await core.create_namespaced_pod(namespace, manifest)

    def container(pod: dict[str, Any] | None, kind: str = "containerStatuses") -> dict[str, Any]:
        statuses = ((pod or {}).get("status") or {}).get(kind) or [{}]
        return dict(statuses[0])

    async def restarted(name: str, exit_code: int) -> Any:
        pod = await read_pod(api_client, namespace, name)
        main = container(pod)
        ended = (main.get("lastState") or {}).get("terminated") or {}
        return pod if main.get("restartCount", 0) >= 1 and ended.get("exitCode") == exit_code else None

    # The init container ran to completion first (the main container's test -f passes: it exits 3, not 1).
    pod = await until("crasher restarted after exiting 3", lambda: restarted("crasher", 3), 60)
    setup = container(pod, "initContainerStatuses")
    assert (
        setup["state"]["terminated"]["exitCode"] == 0
        and setup["state"]["terminated"]["reason"] == "Completed"
    )
    assert condition(pod, "Initialized") == "True" and pod["status"]["phase"] in ("Running", "Pending")
    # A failing liveness probe kills the container (sleep ignores SIGTERM as PID 1: SIGKILL after 1 s).
    await until("unhealthy restarted by its liveness probe", lambda: restarted("unhealthy", 137), 60)

    async def steady_ready() -> dict[str, Any] | None:
        pod = await read_pod(api_client, namespace, "steady")
        return pod if pod is not None and condition(pod, "Ready") == "True" else None

    # The exec readiness probe runs inside the container, with its environment and mounts.
    before = await until("steady Ready (exec probe sees the secret)", steady_ready, 60)
    assert container(before)["restartCount"] == 0

    # Down: the node goes NotReady; a pod deleted meanwhile waits with its deletionTimestamp.
    await host.stop()
    assert hostnode.leftovers(host.work_dir) == []
    await core.delete_namespaced_pod("crasher", namespace)
    waiting = await read_pod(api_client, namespace, "crasher")
    assert waiting is not None and waiting["metadata"]["deletionTimestamp"]

    # Up again: the deletion is finished, the pods still bound run again (a restart, as after a reboot).
    await host.start()
    await until(
        "crasher's deletion finished by the restarted host node",
        lambda: _gone(api_client, namespace, "crasher"),
        30,
    )

    async def steady_back() -> dict[str, Any] | None:
        pod = await steady_ready()
        return pod if pod is not None and container(pod)["restartCount"] == 1 else None

    after = await until("steady Ready again after the restart", steady_back, 60)
    assert container(after)["lastState"]["terminated"]["reason"] == "Unknown"
    await until("the host node Ready again", lambda: node_ready(api_client), 60)

    for name in ("unhealthy", "steady"):
        await core.delete_namespaced_pod(name, namespace)
    for name in ("unhealthy", "steady"):
        await until(f"{name} deleted", functools.partial(_gone, api_client, namespace, name), 30)
    await host.stop()
    assert hostnode.leftovers(host.work_dir) == []
