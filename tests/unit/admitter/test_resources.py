"""Resource vectors, and what a pod requests of a node, computed the way kube-scheduler computes it."""

from __future__ import annotations

from typing import Any

import pytest

from admitter.core.resources import Resources, pod_requests

GI = 1 << 30


def container(
    cpu: str | None = None, memory: str | None = None, limits: dict[str, str] | None = None, **kw: Any
) -> dict[str, Any]:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    resources: dict[str, Any] = {}
    if requests:
        resources["requests"] = requests
    if limits:
        resources["limits"] = limits
    return {"name": "c", "image": "x", "resources": resources, **kw}


def test_vector_arithmetic_and_fit() -> None:
    a = Resources({"cpu": 1000, "memory": GI})
    b = Resources.from_k8s({"cpu": "500m", "nvidia.com/gpu": "1"})
    assert a + b == Resources({"cpu": 1500, "memory": GI, "nvidia.com/gpu": 1})
    assert (a + b) - b == a
    assert a * 3 == Resources({"cpu": 3000, "memory": 3 * GI})
    assert a.max(b) == Resources({"cpu": 1000, "memory": GI, "nvidia.com/gpu": 1})
    assert Resources({"cpu": 0}) == Resources()  # zeros are not stored
    assert a.fits({"cpu": 1000, "memory": GI})
    assert not a.fits({"cpu": 999, "memory": GI})
    assert not b.fits({"cpu": 4000})  # no gpu at all
    assert (a + b).insufficient({"cpu": 1000}) == ["cpu", "memory", "nvidia.com/gpu"]
    assert a.get("pods") == 0 and a["cpu"] == 1000 and sorted(a) == ["cpu", "memory"]
    assert hash(a) == hash(Resources({"memory": GI, "cpu": 1000}))


def spec(**kw: Any) -> dict[str, Any]:
    return {"spec": {"containers": [container("1", "1Gi")], **kw}}


@pytest.mark.parametrize(
    ("pod", "cpu", "memory"),
    [
        # containers add up
        ({"spec": {"containers": [container("100m", "1Gi"), container("200m", "1Gi")]}}, 300, 2 * GI),
        # a bigger init container sets the peak
        (spec(initContainers=[container("2", "512Mi")]), 2000, GI),
        # init containers run one at a time: the largest counts, not the sum
        (spec(initContainers=[container("2"), container("3")]), 3000, GI),
        # a sidecar (restartable init container) runs with the main containers ...
        (spec(initContainers=[container("500m", restartPolicy="Always")]), 1500, GI),
        # ... and with every init container after it: 2 + 0.5 > 1 + 0.5
        (spec(initContainers=[container("500m", restartPolicy="Always"), container("2")]), 2500, GI),
        # an init container before the sidecar does not run alongside it
        (spec(initContainers=[container("2"), container("500m", restartPolicy="Always")]), 2000, GI),
        # two sidecars accumulate
        (
            spec(
                initContainers=[
                    container("1", restartPolicy="Always"),
                    container("1", restartPolicy="Always"),
                    container("2500m"),
                ]
            ),
            4500,
            GI,
        ),
        # the overhead (RuntimeClass) is added on top
        (spec(overhead={"cpu": "250m", "memory": "64Mi"}), 1250, GI + 64 * (1 << 20)),
        # a resource with only a limit requests its limit
        ({"spec": {"containers": [container(limits={"cpu": "2", "memory": "3Gi"})]}}, 2000, 3 * GI),
        ({"spec": {"containers": [container("1", limits={"cpu": "4", "memory": "2Gi"})]}}, 1000, 2 * GI),
        # pod-level resources replace the container sum for cpu and memory
        (spec(resources={"requests": {"cpu": "4"}}), 4000, GI),
        # no requests at all
        ({"spec": {"containers": [{"name": "c", "image": "x"}]}}, 0, 0),
    ],
)
def test_pod_requests(pod: dict[str, Any], cpu: int, memory: int) -> None:
    got = pod_requests(pod)
    assert (got.get("cpu"), got.get("memory"), got.get("pods")) == (cpu, memory, 1)


def test_extended_resources_and_bare_spec() -> None:
    body = {"containers": [container("1", limits={"nvidia.com/gpu": "2"})]}
    assert pod_requests(body) == Resources({"cpu": 1000, "nvidia.com/gpu": 2, "pods": 1})
    assert pod_requests({"spec": body}) == pod_requests(body)
