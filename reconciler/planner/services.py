"""The desired headless Services of a PodCliqueSet: one per replica, selecting every pod of it, so each pod
has a stable DNS name (docs/api.md, "Other children")."""

from __future__ import annotations

from grove_api import constants as c
from grove_api import naming

from .children import child_meta, default_labels
from .snapshot import Obj, Snapshot


def headless_services(snap: Snapshot) -> list[Obj]:
    publish = bool((snap.template.get("headlessServiceConfig") or {}).get("publishNotReadyAddresses", False))
    out = []
    for i in range(snap.replicas):
        name = naming.headless_service(snap.name, i)
        labels = {
            **default_labels(snap.name),
            c.LABEL_NAME: name,
            c.LABEL_COMPONENT: c.COMPONENT_HEADLESS_SERVICE,
            c.LABEL_PCS_REPLICA_INDEX: str(i),
        }
        out.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": child_meta(snap, name, labels, snap.pcs),
                "spec": {
                    "clusterIP": "None",
                    "selector": {**default_labels(snap.name), c.LABEL_PCS_REPLICA_INDEX: str(i)},
                    "publishNotReadyAddresses": publish,
                },
            }
        )
    return out
