"""PodCliqueScalingGroup (grove.io/v1alpha1, short name pcsg): the cliques of one scaling group in one
PodCliqueSet replica, scaled together."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from .base import Conditions, Crd, K8sModel, LastError, Resource


class PodCliqueScalingGroupSpec(K8sModel):
    replicas: Annotated[int | None, Crd(format="int32", default=1)] = Field(
        None, description="Number of replicas of the group; each replica has one PodClique per member clique."
    )
    min_available: Annotated[int | None, Crd(format="int32", default=1)] = Field(
        None,
        description="Replicas that belong to the base gang; replicas beyond it get scaled PodGangs.",
    )
    clique_names: list[str] = Field(
        description="Names of the member cliques (as in the PodCliqueSet template)."
    )


class ReadyReplicaIndicesSelectedToUpdate(K8sModel):
    current: Annotated[int, Crd(format="int32")] = Field(description="Replica index being replaced now.")
    completed: list[Annotated[int, Crd(format="int32")]] | None = Field(
        None, description="Replica indices already replaced."
    )


class PodCliqueScalingGroupUpdateProgress(K8sModel):
    update_started_at: str = Field(description="When the update of this group started.")
    update_ended_at: str | None = Field(None, description="When it ended; absent while it runs.")
    pod_clique_set_generation_hash: str = Field(
        description="Generation hash of the PodCliqueSet being rolled out."
    )
    updated_pod_cliques_count: Annotated[int | None, Crd(format="int32")] = Field(
        None, description="PodCliques of the group already updated."
    )
    total_pod_cliques_count: Annotated[int | None, Crd(format="int32")] = Field(
        None, description="PodCliques of the group to update."
    )
    ready_replica_indices_selected_to_update: ReadyReplicaIndicesSelectedToUpdate | None = Field(
        None, description="Ready replicas chosen for replacement, one at a time."
    )


class PodCliqueScalingGroupStatus(K8sModel):
    replicas: Annotated[int | None, Crd(format="int32")] = Field(None, description="Current replicas.")
    scheduled_replicas: Annotated[int | None, Crd(format="int32", default=0)] = Field(
        None, description="Replicas whose cliques have their minimum scheduled."
    )
    available_replicas: Annotated[int | None, Crd(format="int32", default=0)] = Field(
        None, description="Replicas whose cliques have their minimum available."
    )
    updated_replicas: Annotated[int | None, Crd(format="int32", default=0)] = Field(
        None, description="Replicas on the current template."
    )
    selector: str | None = Field(None, description="Label selector of the pods, for the scale subresource.")
    observed_generation: Annotated[int | None, Crd(format="int64")] = Field(
        None, description="The generation of the spec this status reflects."
    )
    last_errors: list[LastError] | None = Field(None, description="Errors of the last reconcile.")
    conditions: Conditions | None = Field(
        None, description="Conditions: MinAvailableBreached, GangTerminationInProgress."
    )
    current_pod_clique_set_generation_hash: str | None = Field(
        None, description="PodCliqueSet generation hash the replicas correspond to."
    )
    update_progress: PodCliqueScalingGroupUpdateProgress | None = Field(
        None, description="Progress of the current or last rolling update."
    )
    first_available_at: str | None = Field(
        None,
        description="When MinAvailableBreached first became False for this group (grove-py). Gang "
        "termination acts only on a group that was available once.",
    )


class PodCliqueScalingGroup(Resource):
    spec: PodCliqueScalingGroupSpec = Field(description="Desired state of the PodCliqueScalingGroup.")
    status: PodCliqueScalingGroupStatus | None = Field(
        None, description="Observed state of the PodCliqueScalingGroup."
    )
