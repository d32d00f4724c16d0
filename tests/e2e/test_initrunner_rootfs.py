"""The init runner's rootfs mode (localcluster/initrunner.py): grove-initc of a pod on a KWOK node run as its
container says, from its image's filesystem: `command` + `args` with chroot, as the image's user, with the
pod-info and token volumes mounted where the pod spec puts them, so it uses its in-cluster configuration.

The session cluster's runner is switched to rootfs mode for one image with `up(initc_images=...)` (what
`grove-cluster up --initc-rootfs` does) and back afterwards; pods of other images keep today's behaviour.
The image is the tests' python3 filesystem (tests/e2e/rootfs.py) with a stand-in grove-initc passed as the
container's command: a script that does what grove-initc does with what a container gets (files at the
mount paths, KUBERNETES_SERVICE_HOST/PORT, the ServiceAccount token), and checks its user.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from grove_api import constants as c
from grove_api.pod_admission import initc_ops
from localcluster import cluster as localcluster
from localcluster import initrunner, nodes, processes, sandbox
from localcluster.images import ImageRootfs, load
from localcluster.state import ClusterInfo
from tests.conftest import TEST_NODES
from tests.e2e.rootfs import python_rootfs
from tests.initc_identity import initc_identity
from tests.waiting import until

# The first run on a machine builds the image filesystem (tests/e2e/rootfs.py, ~80 s) in a fixture.
pytestmark = pytest.mark.timeout(600)
IMAGE = "grove-test/initc-stand-in:rootfs"
USER = 65532
STAND_IN = f"""import json, os, ssl, sys, time, urllib.parse, urllib.request
assert (os.getuid(), os.getgid()) == ({USER}, {USER}), (os.getuid(), os.getgid())
namespace = open("/var/grove/pod-info/namespace").read()
podgang = open("/var/grove/pod-info/podgangname").read()
sa = "/var/run/secrets/kubernetes.io/serviceaccount"
headers = {{"Authorization": "Bearer " + open(sa + "/token").read()}}
context = ssl.create_default_context(cafile=sa + "/ca.crt")
parents = dict(a.split("=", 1)[1].rsplit(":", 1) for a in sys.argv if a.startswith("--podcliques="))
base = "https://%s:%s" % (os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"])
query = urllib.parse.urlencode({{"labelSelector": "grove.io/podgang=" + podgang}})
print("stand-in grove-initc waiting for parents", parents, flush=True)
while True:
    request = urllib.request.Request(f"{{base}}/api/v1/namespaces/{{namespace}}/pods?{{query}}", headers=headers)
    ready = {{}}
    for pod in json.load(urllib.request.urlopen(request, context=context))["items"]:
        if any(x["type"] == "Ready" and x["status"] == "True" for x in pod["status"].get("conditions", [])):
            clique = pod["metadata"]["labels"]["grove.io/podclique"]
            ready[clique] = ready.get(clique, 0) + 1
    if all(ready.get(name, 0) >= int(count) for name, count in parents.items()):
        print("stand-in grove-initc: parents ready", flush=True)
        sys.exit(0)
    time.sleep(0.5)
"""


@pytest.fixture
async def rootfs_mode(cluster: ClusterInfo, tmp_path: Path) -> AsyncIterator[ImageRootfs]:
    """The session cluster's init runner in rootfs mode for IMAGE, back to the default afterwards."""
    config = tmp_path / "image-config.json"
    config.write_text(json.dumps([{"Config": {"User": f"{USER}:{USER}", "Env": ["PATH=/usr/bin:/bin"]}}]))
    rootfs = await asyncio.to_thread(python_rootfs)
    image = load([f"{IMAGE}={rootfs}"], [f"{IMAGE}={config}"])[IMAGE]
    try:
        await asyncio.to_thread(localcluster.up, cluster.state_dir, TEST_NODES, initc_images=[image])
        yield image
    finally:
        await asyncio.to_thread(localcluster.up, cluster.state_dir, TEST_NODES, initc_images=[])


def _pod(name: str, pcs: str, clique: str, after: str = "") -> Any:
    """A gang pod on a KWOK node; with `after` (a parent clique) it gets grove-initc as the pod webhook adds
    it, from IMAGE with the stand-in as its command."""
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {c.LABEL_PART_OF: pcs, c.LABEL_PODCLIQUE: clique, c.LABEL_PODGANG: f"{pcs}-0"},
            "annotations": {c.ANNOTATION_STARTUP_DEPENDENCIES: f"{after}:1"} if after else {},
        },
        "spec": {
            "containers": [{"name": "main", "image": "busybox"}],
            "tolerations": [{"key": nodes.FAKE_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}],
            "terminationGracePeriodSeconds": 0,
        },
    }
    if after:
        ops = initc_ops(pod, IMAGE, ["python3", "-c", STAND_IN, "grove-initc"])
        assert isinstance(ops, list) and ops, ops
        pod = jsonpatch.apply_patch(pod, ops)
    return pod


async def _ready(api: client.ApiClient, namespace: str, name: str) -> Any:
    try:
        pod = await client.CoreV1Api(api).read_namespaced_pod(name, namespace)
    except ApiException as err:
        if err.status == 404:
            return None
        raise
    ready = any(x.type == "Ready" and x.status == "True" for x in pod.status.conditions or ())
    return pod if ready else None


def _containers(state_dir: Path, uid: str) -> list[int]:
    """Processes chrooted into the pod's grove-initc container (their root is its overlay)."""
    marker = str(initrunner.work_dir(state_dir)) + os.sep
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                root = os.readlink(proc / "root")
            except OSError:
                continue
            if root.startswith(marker) and f"/{uid}/" in root:
                found.append(int(proc.name))
    return found


def _uid_of(pid: int) -> int:
    line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("Uid:"))
    return int(line.split()[1])


async def test_grove_initc_runs_from_its_image_as_its_container_says(
    cluster: ClusterInfo, rootfs_mode: ImageRootfs, api_client: client.ApiClient, namespace: str
) -> None:
    runner = localcluster.load(cluster.state_dir)
    assert runner is not None and runner.initrunner is not None
    assert f"--rootfs={IMAGE}={rootfs_mode.rootfs}" in runner.initrunner.argv
    core = client.CoreV1Api(api_client)
    pcs = f"pcs-{uuid.uuid4().hex[:6]}"
    await initc_identity(api_client, namespace, pcs)
    await core.create_namespaced_pod(namespace, _pod("dependent", pcs, f"{pcs}-0-b", after=f"{pcs}-0-a"))
    log = initrunner.log_path(cluster.state_dir)

    async def waiting() -> bool:
        text = log.read_text(errors="replace")
        return f"{namespace}/dependent | stand-in grove-initc waiting for parents" in text

    await until("the stand-in grove-initc running and waiting (runner log)", waiting, 90)
    pod = await core.read_namespaced_pod("dependent", namespace)
    uid = pod.metadata.uid
    helpers = [p for p in initrunner.stray_pids(cluster.state_dir) if sandbox.MODULE in processes.cmdline(p)]
    assert any(uid in " ".join(processes.cmdline(p)) for p in helpers), "no sandbox helper for the pod"
    chrooted = _containers(cluster.state_dir, uid)
    assert chrooted and all(_uid_of(pid) == USER for pid in chrooted)
    assert not (rootfs_mode.rootfs / "var" / "grove").exists()  # mounts land in the pod's own overlay

    await core.create_namespaced_pod(namespace, _pod("parent", pcs, f"{pcs}-0-a"))
    ready = await until(
        "the dependant Ready once its parent is", lambda: _ready(api_client, namespace, "dependent"), 90
    )
    assert (ready.metadata.annotations or {})[initrunner.SUCCEEDED_ANNOTATION] == initrunner.SUCCEEDED_VALUE
    assert f"{namespace}/dependent | stand-in grove-initc: parents ready" in log.read_text(errors="replace")
    await until("its container gone", lambda: _none(cluster.state_dir, uid), 30)


async def _none(state_dir: Path, uid: str) -> bool:
    return not _containers(state_dir, uid)
