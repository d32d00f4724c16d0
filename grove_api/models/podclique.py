"""PodClique (grove.io/v1alpha1, short name pclq): the pods of one role in one replica; made by the
operator from a clique template."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from .base import Conditions, Crd, K8sModel, LastError, Resource
from .shared import PodCliqueSpec


class ReadyPodsSelectedToUpdate(K8sModel):
    current: str | None = Field(None, description="Ready pod being replaced now.")
    completed: list[str] | None = Field(None, description="Ready pods already replaced.")


class PodCliqueUpdateProgress(K8sModel):
    update_started_at: str = Field(description="When the update of this PodClique started.")
    update_ended_at: str | None = Field(None, description="When it ended; absent while it runs.")
    pod_clique_set_generation_hash: str = Field(
        description="Generation hash of the PodCliqueSet being rolled out."
    )
    pod_template_hash: str = Field(description="Pod template hash being rolled out.")
    ready_pods_selected_to_update: ReadyPodsSelectedToUpdate | None = Field(
        None, description="Ready pods chosen for replacement, one at a time."
    )


class PodCliqueStatus(K8sModel):
    observed_generation: Annotated[int | None, Crd(format="int64")] = Field(
        None, description="The generation of the spec this status reflects."
    )
    last_errors: list[LastError] | None = Field(None, description="Errors of the last reconcile.")
    replicas: Annotated[int | None, Crd(format="int32")] = Field(None, description="Pods that exist.")
    ready_replicas: Annotated[int | None, Crd(format="int32", default=0)] = Field(
        None, description="Pods that are Ready."
    )
    updated_replicas: Annotated[int | None, Crd(format="int32", default=0)] = Field(
        None, description="Pods on the current pod template."
    )
    schedule_gated_replicas: Annotated[int | None, Crd(format="int32", default=0)] = Field(
        None, description="Pods still held by a scheduling gate (waiting for gang admission)."
    )
    scheduled_replicas: Annotated[int | None, Crd(format="int32", default=0)] = Field(
        None, description="Pods bound to a node."
    )
    hpa_pod_selector: str | None = Field(
        None, description="Label selector of the pods, for the scale subresource and autoscalers."
    )
    conditions: Conditions | None = Field(
        None, description="Conditions: MinAvailableBreached, PodCliqueScheduled."
    )
    current_pod_clique_set_generation_hash: str | None = Field(
        None, description="PodCliqueSet generation hash the pods correspond to."
    )
    current_pod_template_hash: str | None = Field(
        None, description="Pod template hash the pods correspond to."
    )
    update_progress: PodCliqueUpdateProgress | None = Field(
        None, description="Progress of the current or last rolling update."
    )
    first_scheduled_at: str | None = Field(
        None,
        description="When PodCliqueScheduled first became True for this PodClique (grove-py). Gang "
        "termination acts only on a PodClique that was scheduled once, so a gang still waiting for "
        "capacity is never recycled.",
    )


class PodClique(Resource):
    spec: PodCliqueSpec = Field(description="Desired state of the PodClique.")
    status: PodCliqueStatus | None = Field(None, description="Observed state of the PodClique.")
