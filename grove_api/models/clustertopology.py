"""ClusterTopologyBinding (grove.io/v1alpha1, cluster-scoped, short name ct): names the levels of the
cluster's network topology (zone, block, rack, host …) and the node labels that carry them."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from .base import Conditions, Crd, K8sModel, Resource
from .shared import TopologyDomain

LABEL_KEY_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]/)?([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$"


class TopologyLevel(K8sModel):
    domain: TopologyDomain = Field(description="Name of the level, e.g. zone, block, rack, host.")
    key: Annotated[str, Crd(min_length=1, max_length=63, pattern=LABEL_KEY_PATTERN)] = Field(
        description="Node label whose value identifies the domain a node is in."
    )


class SchedulerTopologyBinding(K8sModel):
    scheduler_name: str = Field(description="Scheduler backend the topology is published to.")
    topology_reference: str = Field(description="Name of the scheduler's own topology object.")


class ClusterTopologyBindingSpec(K8sModel):
    levels: Annotated[list[TopologyLevel], Crd(min_items=1)] = Field(
        description="Topology levels from the broadest to the narrowest."
    )
    scheduler_topology_bindings: list[SchedulerTopologyBinding] | None = Field(
        None, description="Scheduler backends this topology is synchronised to."
    )


class SchedulerTopologyStatus(K8sModel):
    scheduler_name: str = Field(description="Scheduler backend.")
    topology_reference: str = Field(description="Name of the scheduler's topology object.")
    in_sync: bool = Field(description="Whether the scheduler's topology matches the levels.")
    scheduler_backend_topology_observed_generation: Annotated[int | None, Crd(format="int64")] = Field(
        None, description="Generation of the scheduler's topology object last compared."
    )
    message: str | None = Field(None, description="Details when not in sync.")


class ClusterTopologyBindingStatus(K8sModel):
    observed_generation: Annotated[int | None, Crd(format="int64")] = Field(
        None, description="The generation of the spec this status reflects."
    )
    conditions: Conditions | None = Field(None, description="Conditions: SchedulerTopologyDrift.")
    scheduler_topology_statuses: list[SchedulerTopologyStatus] | None = Field(
        None, description="Per scheduler backend, whether its topology is in sync."
    )


class ClusterTopologyBinding(Resource):
    spec: ClusterTopologyBindingSpec = Field(description="The topology levels of the cluster.")
    status: ClusterTopologyBindingStatus | None = Field(
        None, description="Observed state of the ClusterTopologyBinding."
    )
