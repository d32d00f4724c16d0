"""The desired HorizontalPodAutoscalers of a PodCliqueSet (docs/api.md, "Other children"): autoscaling/v2,
on the scale subresources of standalone PodCliques with `autoScalingConfig` and of scaling groups with
`scaleConfig`. An HPA writes `spec.replicas` of its target; the planner never overwrites it."""

from __future__ import annotations

import copy

from grove_api import constants as c
from grove_api import naming

from .children import child_meta, default_labels, group_configs, standalone_cliques
from .snapshot import Obj, Snapshot

API_VERSION = "autoscaling/v2"
KIND = "HorizontalPodAutoscaler"


def autoscalers(snap: Snapshot) -> list[Obj]:
    """One HPA per standalone clique with `autoScalingConfig` and per scaling group with `scaleConfig`, in
    every PodCliqueSet replica, named after what it scales."""
    out = []

    def hpa(name: str, kind: str, config: Obj) -> Obj:
        labels = {**default_labels(snap.name), c.LABEL_NAME: name, c.LABEL_COMPONENT: c.COMPONENT_HPA}
        spec: Obj = {
            "scaleTargetRef": {"apiVersion": c.API_VERSION, "kind": kind, "name": name},
            "maxReplicas": int(config["maxReplicas"]),
        }
        if config.get("minReplicas") is not None:
            spec["minReplicas"] = int(config["minReplicas"])
        if config.get("metrics"):
            spec["metrics"] = copy.deepcopy(config["metrics"])
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": child_meta(snap, name, labels, snap.pcs),
            "spec": spec,
        }

    for i in range(snap.replicas):
        for clique in standalone_cliques(snap):
            config = clique.get("spec", {}).get("autoScalingConfig")
            if config:
                out.append(
                    hpa(naming.standalone_podclique(snap.name, i, clique["name"]), c.KIND_PODCLIQUE, config)
                )
        for group in group_configs(snap):
            if group.get("scaleConfig"):
                name = naming.scaling_group(snap.name, i, group["name"])
                out.append(hpa(name, c.KIND_PODCLIQUESCALINGGROUP, group["scaleConfig"]))
    return out
