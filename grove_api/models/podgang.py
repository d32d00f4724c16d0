"""PodGang (scheduler.grove.io/v1alpha1, short name pg): the unit of gang scheduling. Its podgroups list
the pods that must be placed together and the minimum of each."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from grove_api import constants as c

from .base import Conditions, Crd, K8sModel, NamespacedName, Resource


class PackConstraint(K8sModel):
    required: str | None = Field(None, description="Node label key all pods must share a value of.")
    preferred: str | None = Field(None, description="Node label key the pods should share a value of.")


class PodGangTopologyConstraint(K8sModel):
    pack_constraint: PackConstraint | None = Field(
        None, description="Pack the pods into one domain, given as node label keys."
    )


class PodGroup(K8sModel):
    name: str = Field(description="Name of the group: the PodClique the pods belong to.")
    pod_references: list[NamespacedName] = Field(description="Pods of the group, sorted by name.")
    min_replicas: Annotated[int, Crd(format="int32")] = Field(
        description="Pods of this group that must be placed for the gang to be placed."
    )
    topology_constraint: PodGangTopologyConstraint | None = Field(
        None, description="Placement of this group's pods."
    )


class TopologyConstraintGroupConfig(K8sModel):
    name: str = Field(description="Name of the constrained set of groups (a scaling-group replica).")
    pod_group_names: list[str] = Field(description="PodGroups the constraint applies to together.")
    topology_constraint: PodGangTopologyConstraint | None = Field(
        None, description="Placement of these groups."
    )


class PodGangSpec(K8sModel):
    podgroups: list[PodGroup] = Field(description="Groups of pods scheduled as one gang.")
    topology_constraint: PodGangTopologyConstraint | None = Field(
        None, description="Placement of the whole gang."
    )
    topology_constraint_group_configs: list[TopologyConstraintGroupConfig] | None = Field(
        None, description="Placement of subsets of the podgroups."
    )
    priority_class_name: str | None = Field(None, description="PriorityClass of the gang.")
    reuse_reservation_ref: NamespacedName | None = Field(
        None, description="A PodGang whose reservation this one may reuse."
    )


class PodGangStatus(K8sModel):
    phase: Annotated[str | None, Crd(enum=c.PODGANG_PHASES[:4])] = Field(
        None,
        description="Pending (waiting for pods or capacity), Admitted (released to the scheduler), "
        "Starting (being bound) or Running.",
    )
    conditions: Conditions | None = Field(
        None,
        description="Conditions: Initialized (all pods created), Admitted (gang admission: why it waits), "
        "Scheduled, Ready, Unhealthy, DisruptionTarget.",
    )
    placement_score: float | None = Field(None, description="Quality of the placement, 0 to 1.")


class PodGang(Resource):
    spec: PodGangSpec = Field(description="Desired state of the PodGang.")
    status: PodGangStatus | None = Field(None, description="Observed state of the PodGang.")
