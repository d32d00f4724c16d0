"""Every e2e test that runs gang pods does so under the gang invariant (tests/gang.py): at no moment may a
gang be partly released or bound beyond the release/bind windows, and every pod must land on the node the
admitter pinned it to. Modules opt in with `pytestmark = pytest.mark.usefixtures("gang_invariant")`; a
module may override `gang_windows` (seconds) when it does something documented to take longer, such as
killing the operator in the middle of a release."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from kubernetes_asyncio import client

from tests.gang import GangInvariant
from tests.podtracker import Start, workloads


@pytest.fixture
def gang_windows() -> tuple[float, float]:
    """(release window, bind window)."""
    return (3.0, 20.0)


@pytest.fixture
async def gang_invariant(
    api_client: client.ApiClient, namespace: str, gang_windows: tuple[float, float]
) -> AsyncIterator[GangInvariant]:
    release, bind = gang_windows
    invariant = GangInvariant(api_client, namespace, release_window=release, bind_window=bind)
    async with invariant:
        yield invariant
    invariant.check()


@pytest.fixture
async def start(
    cluster: Any, api_client: client.ApiClient, namespace: str, gang_invariant: GangInvariant
) -> AsyncIterator[Start]:
    """`await start(workload_factory, nodes=N, pods=P, ...)`: a workload on its own node pool, running
    (tests/podtracker.py `workloads`)."""
    async with workloads(cluster, api_client, namespace, gang_invariant) as start:
        yield start
