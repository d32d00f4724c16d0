"""Shared fixtures: a real local cluster for integration/e2e tests, namespaces, API clients.

Markers are applied by directory so `pytest -m unit` needs no per-file decoration.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import settings

if TYPE_CHECKING:
    from kubernetes_asyncio.client import ApiClient, Configuration

    from localcluster.state import ClusterInfo
    from tools.image import BuiltImage, Rootfs

# Property tests explore new examples on every local run (that is how they find bugs); CI runs the same
# examples each time (HYPOTHESIS_PROFILE=ci), so a landing is never decided by the draw.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

TESTS_DIR = Path(__file__).parent
MARKER_BY_DIR = {"unit": "unit", "integration": "integration", "e2e": "e2e", "image": "image"}
TEST_NODES = 5
BUILT_IMAGE: pytest.StashKey[BuiltImage] = pytest.StashKey()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        try:
            top = Path(str(item.path)).relative_to(TESTS_DIR).parts[0]
        except (ValueError, IndexError):
            continue
        marker = MARKER_BY_DIR.get(top)
        if marker:
            item.add_marker(getattr(pytest.mark, marker))


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build missing cluster binaries, helm and this tree's container image before the first test, outside
    any per-test timeout.

    A cold build takes minutes; inside the `cluster` (or `image_rootfs`) fixture it would count against the
    first test's pytest-timeout budget.
    """

    def wanted(fixture: str) -> bool:
        return any(fixture in getattr(item, "fixturenames", ()) for item in session.items)

    from localcluster import binaries

    if wanted("cluster") or wanted("chaos_cluster"):
        binaries.ensure()
    if wanted("helm"):
        binaries.ensure_helm()
    if wanted("image_rootfs") and not session.config.option.collectonly:
        from tools import image

        session.config.stash[BUILT_IMAGE] = image.ensure_image()


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterInfo]:
    """A whole local cluster (etcd, apiserver, scheduler, controller manager, KWOK, 5 nodes) per session.

    Set GROVE_TEST_STATE_DIR to reuse a cluster across runs (it is then left running).
    """
    from localcluster import cluster as localcluster

    reuse = os.environ.get("GROVE_TEST_STATE_DIR")
    if reuse:
        info = localcluster.up(Path(reuse).absolute(), nodes=TEST_NODES)
        # A reused cluster may have been started with fewer nodes; tests rely on fake-node-000..004.
        from localcluster import nodes

        have = nodes.next_index(n["metadata"]["name"] for n in nodes.list_nodes(info))
        if have < TEST_NODES:
            nodes.add(info, TEST_NODES - have)
        yield info
        return
    state_dir = tmp_path_factory.mktemp("grove-cluster") / "state"
    info = localcluster.up(state_dir, nodes=TEST_NODES)
    try:
        yield info
    finally:
        localcluster.down(state_dir)


@pytest.fixture(scope="session")
def image_rootfs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Rootfs]:
    """This tree's container image, built first if it is not yet (never skipped: a machine that cannot build
    it fails), unpacked once per session. Run its files as a container would, as root:
    `subprocess.run(image_rootfs.command(["grove-operator", ...]), env=image_rootfs.env)`."""
    from tools import image

    # The image built before the first test: the tree may change under a long session, the image under test
    # should not.
    built = request.config.stash.get(BUILT_IMAGE, None) or image.ensure_image()
    dest = tmp_path_factory.mktemp("image-rootfs")
    try:
        rootfs = image.export_rootfs(built.config.image_id, dest, built.engine)
    except image.ImageError:
        # Another tree on this machine built since and removed the image it superseded: build it again.
        built = image.ensure_image()
        rootfs = image.export_rootfs(built.config.image_id, dest, built.engine)
    yield rootfs
    shutil.rmtree(dest, ignore_errors=True)  # a few hundred MB


@pytest.fixture(scope="session")
def kube_config(cluster: ClusterInfo) -> Configuration:
    """kubernetes_asyncio Configuration for the cluster's admin user (plain data: safe to share)."""
    return cluster.api_configuration()


@pytest.fixture
async def api_client(kube_config: Configuration) -> AsyncIterator[ApiClient]:
    """An ApiClient bound to the current test's event loop."""
    from kubernetes_asyncio.client import ApiClient

    async with ApiClient(configuration=kube_config) as client:
        yield client


@pytest.fixture
async def namespace(api_client: ApiClient) -> AsyncIterator[str]:
    """A fresh namespace `t-<8 hex>`, ready for pods (its default ServiceAccount exists); deleted after."""
    from kubernetes_asyncio.client import CoreV1Api, V1Namespace, V1ObjectMeta
    from kubernetes_asyncio.client.exceptions import ApiException

    from localcluster.nodes import wait_default_service_account

    name = f"t-{uuid.uuid4().hex[:8]}"
    core = CoreV1Api(api_client)
    await core.create_namespace(V1Namespace(metadata=V1ObjectMeta(name=name)))
    try:
        await wait_default_service_account(api_client, name, timeout=30)
        yield name
    finally:
        try:
            await core.delete_namespace(name)
        except ApiException as err:
            if err.status != 404:
                raise
