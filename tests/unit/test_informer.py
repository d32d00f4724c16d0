"""kube.informer without an apiserver: why it re-lists, as counted in `grove_informer_relists_total`."""

from __future__ import annotations

from typing import Any

from prometheus_client import REGISTRY

from kube.client import JSON, Gone
from kube.informer import Informer
from kube.resources import CONFIG_MAP, Resource


class ExpiringWatches:
    """Lists one ConfigMap; every watch is refused with 410 Gone (a compacted resourceVersion)."""

    async def list_all(self, resource: Resource, **_: Any) -> tuple[list[JSON], str]:
        cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "ns"}}
        return [{**cm, "metadata": {**cm["metadata"], "resourceVersion": "7"}}], "7"

    async def watch(self, resource: Resource, **_: Any) -> Any:
        raise Gone("too old resource version: 1 (7)", status=410)


def relists(reason: str) -> float:
    value = REGISTRY.get_sample_value(
        "grove_informer_relists_total", {"resource": CONFIG_MAP.plural, "reason": reason}
    )
    return value or 0.0


async def test_relists_are_counted_by_reason() -> None:
    before = {reason: relists(reason) for reason in ("initial", "expired", "resync")}
    inf = Informer(ExpiringWatches(), CONFIG_MAP, namespace="ns")

    await inf.relist("initial")
    await inf.watch_step("1")  # 410 Gone: re-listed
    await inf.watch_step()
    await inf.relist()

    assert inf.relists == 4 and inf.get("ns", "a") is not None
    assert {reason: relists(reason) - n for reason, n in before.items()} == {
        "initial": 1,
        "expired": 2,
        "resync": 1,
    }
