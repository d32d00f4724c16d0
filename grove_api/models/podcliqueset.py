"""PodCliqueSet (grove.io/v1alpha1, short name pcs): the whole inference system, replicated as a unit."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import Field

from grove_api import constants as c

from .base import Conditions, Crd, K8sModel, LastError, Resource
from .shared import AutoScalingConfig, PodCliqueSpec, ResourceSharingSpec, TopologyConstraint


class PodCliqueTemplateSpec(K8sModel):
    """Template of one clique; every PodCliqueSet replica (and scaling-group replica) gets a PodClique
    made from it."""

    name: str = Field(
        description="Name of the clique, unique within the PodCliqueSet. Part of every generated name: "
        "<pcs>-<replica>-<clique>. Immutable."
    )
    labels: dict[str, str] | None = Field(None, description="Labels copied onto the PodClique and its pods.")
    annotations: dict[str, str] | None = Field(
        None, description="Annotations copied onto the PodClique and its pods."
    )
    topology_constraint: TopologyConstraint | None = Field(
        None,
        description="Placement of this clique's pods; must be as strict as or stricter than the "
        "enclosing scaling group's and PodCliqueSet's.",
    )
    resource_sharing: list[ResourceSharingSpec] | None = Field(
        None, description="Resource claims shared between the pods of this clique."
    )
    spec: PodCliqueSpec = Field(description="Specification of the clique.")


class ScalingGroupResourceSharingFilter(K8sModel):
    child_clique_names: list[str] | None = Field(
        None, description="Member cliques that get the claim (default: all members)."
    )


class ScalingGroupResourceSharingSpec(ResourceSharingSpec):
    filter: ScalingGroupResourceSharingFilter | None = Field(
        None, description="Restricts sharing to some member cliques; absent means all."
    )


class PodCliqueScalingGroupConfig(K8sModel):
    """A group of cliques that scale together (e.g. one leader + N workers = one model instance)."""

    name: str = Field(
        description="Name of the scaling group, unique within the PodCliqueSet. Its cliques are named "
        "<pcs>-<replica>-<group>-<groupReplica>-<clique>."
    )
    clique_names: list[str] = Field(
        description="Cliques that belong to this group; each clique belongs to at most one group. Immutable."
    )
    annotations: dict[str, str] | None = Field(
        None, description="Annotations copied onto the PodCliqueScalingGroup."
    )
    replicas: Annotated[int | None, Crd(format="int32", default=1)] = Field(
        None, description="Number of replicas of the whole group. Defaults to 1."
    )
    min_available: Annotated[int | None, Crd(format="int32", default=1)] = Field(
        None,
        description="Group replicas that form the base gang with the standalone cliques; replicas beyond "
        "it get their own scaled PodGangs. Defaults to 1; must not exceed replicas. Immutable.",
    )
    scale_config: AutoScalingConfig | None = Field(
        None, description="Horizontal autoscaling of the group's replicas."
    )
    resource_sharing: list[ScalingGroupResourceSharingSpec] | None = Field(
        None, description="Resource claims shared within each replica of the group."
    )
    topology_constraint: TopologyConstraint | None = Field(
        None, description="Placement of each replica of the group."
    )


class HeadlessServiceConfig(K8sModel):
    publish_not_ready_addresses: Annotated[bool, Crd(default=True)] = Field(
        True,
        description="Publish DNS records of pods that are not Ready yet (peers often need to find each "
        "other before they are ready).",
    )


class ResourceClaimTemplateConfig(K8sModel):
    name: str = Field(description="Name by which resourceSharing entries refer to this template.")
    template_spec: Annotated[
        dict[str, Any], Crd(embedded="io.k8s.api.resource.v1.ResourceClaimTemplateSpec")
    ] = Field(description="The ResourceClaimTemplateSpec (resource.k8s.io/v1) used to make claims.")


class PCSResourceSharingFilter(K8sModel):
    child_clique_names: list[str] | None = Field(None, description="Standalone cliques that get the claim.")
    child_scaling_group_names: list[str] | None = Field(
        None, description="Scaling groups whose cliques get the claim."
    )


class PCSResourceSharingSpec(ResourceSharingSpec):
    filter: PCSResourceSharingFilter | None = Field(
        None, description="Restricts sharing to some cliques or scaling groups; absent means all."
    )


class PodCliqueSetTemplateSpec(K8sModel):
    """What every replica of the PodCliqueSet consists of."""

    cliques: Annotated[list[PodCliqueTemplateSpec], Crd(list_type="map", list_map_keys=("name",))] = Field(
        description="The cliques (roles) of the system. At least one."
    )
    clique_startup_type: Annotated[
        str | None,
        Crd(enum=(c.STARTUP_ANY_ORDER, c.STARTUP_IN_ORDER, c.STARTUP_EXPLICIT), default=c.STARTUP_ANY_ORDER),
    ] = Field(
        None,
        description="Order in which cliques start: CliqueStartupTypeAnyOrder (all at once), "
        "CliqueStartupTypeInOrder (in the order of cliques), CliqueStartupTypeExplicit (as startsAfter says). "
        "Immutable.",
    )
    priority_class_name: str | None = Field(
        None, description="PriorityClass of the PodGangs and pods of this PodCliqueSet."
    )
    headless_service_config: HeadlessServiceConfig | None = Field(
        None, description="Settings of the headless Service created for each PodCliqueSet replica."
    )
    topology_constraint: TopologyConstraint | None = Field(
        None, description="Placement of each PodCliqueSet replica."
    )
    termination_delay: str | None = Field(
        None,
        description="How long a gang may stay below its minAvailable before it is terminated and recreated "
        "(a duration such as 30s, 10m, 4h). Defaults to 4h.",
    )
    resource_claim_templates: list[ResourceClaimTemplateConfig] | None = Field(
        None, description="ResourceClaimTemplates that resourceSharing entries can refer to by name."
    )
    resource_sharing: list[PCSResourceSharingSpec] | None = Field(
        None, description="Resource claims shared across the PodCliqueSet."
    )
    pod_clique_scaling_groups: list[PodCliqueScalingGroupConfig] | None = Field(
        None, description="Groups of cliques that scale together."
    )


class PodCliqueSetUpdateStrategy(K8sModel):
    type: Annotated[
        str | None,
        Crd(enum=(c.UPDATE_ROLLING_RECREATE, c.UPDATE_ON_DELETE), default=c.UPDATE_ROLLING_RECREATE),
    ] = Field(
        None,
        description="RollingRecreate: replace pods replica by replica after a template change. "
        "OnDelete: replace a pod only when it is deleted.",
    )


class PodCliqueSetSpec(K8sModel):
    replicas: Annotated[int | None, Crd(format="int32", default=0)] = Field(
        None, description="Number of replicas of the whole system; each replica is one base PodGang."
    )
    update_strategy: PodCliqueSetUpdateStrategy | None = Field(
        None, description="How pods are replaced when the template changes."
    )
    template: PodCliqueSetTemplateSpec = Field(description="What each replica consists of.")


class PodGangStatus(K8sModel):
    name: str = Field(description="Name of the PodGang.")
    phase: Annotated[str, Crd(enum=c.PODGANG_PHASES)] = Field(description="Phase of the PodGang.")
    conditions: Conditions | None = Field(None, description="Conditions of the PodGang.")


class ReplicaUpdateProgress(K8sModel):
    replica_index: Annotated[int, Crd(format="int32")] = Field(
        description="Index of the replica being updated."
    )
    update_started_at: str = Field(description="When the update of this replica started.")
    update_ended_at: str | None = Field(None, description="When the update of this replica ended.")


class PodCliqueSetUpdateProgress(K8sModel):
    update_started_at: str = Field(description="When the current rolling update started.")
    update_ended_at: str | None = Field(None, description="When it ended; absent while it runs.")
    updated_pod_cliques_count: Annotated[int | None, Crd(format="int32")] = Field(
        None, description="PodCliques already on the new template."
    )
    total_pod_cliques_count: Annotated[int | None, Crd(format="int32")] = Field(
        None, description="PodCliques to update in all."
    )
    updated_pod_clique_scaling_groups_count: Annotated[int | None, Crd(format="int32")] = Field(
        None, description="PodCliqueScalingGroups already on the new template."
    )
    total_pod_clique_scaling_groups_count: Annotated[int | None, Crd(format="int32")] = Field(
        None, description="PodCliqueScalingGroups to update in all."
    )
    currently_updating: list[ReplicaUpdateProgress] | None = Field(
        None, description="PodCliqueSet replicas being updated now."
    )


class PodCliqueSetStatus(K8sModel):
    observed_generation: Annotated[int | None, Crd(format="int64")] = Field(
        None, description="The generation of the spec this status reflects."
    )
    conditions: Conditions | None = Field(None, description="Conditions of the PodCliqueSet.")
    last_errors: list[LastError] | None = Field(None, description="Errors of the last reconcile.")
    replicas: Annotated[int | None, Crd(format="int32")] = Field(None, description="Current replicas.")
    updated_replicas: Annotated[int | None, Crd(format="int32", default=0)] = Field(
        None, description="Replicas on the current template."
    )
    available_replicas: Annotated[int | None, Crd(format="int32", default=0)] = Field(
        None, description="Replicas whose every clique and scaling group has its minimum available."
    )
    hpa_pod_selector: str | None = Field(
        None, description="Label selector of the pods, for the scale subresource and autoscalers."
    )
    pod_gang_statuses: list[PodGangStatus] | None = Field(None, description="Status of each PodGang.")
    current_generation_hash: str | None = Field(
        None, description="Hash of the pod templates of all cliques the status reflects."
    )
    update_progress: PodCliqueSetUpdateProgress | None = Field(
        None, description="Progress of the current or last rolling update."
    )


PACKDOMAIN_FORBIDDEN = "packDomain is deprecated and cannot be used on new workloads; use pack.required"
PODCLIQUESET_RULES = (
    {
        "rule": "oldSelf.hasValue() || !has(self.spec.template.topologyConstraint) || "
        "!has(self.spec.template.topologyConstraint.packDomain)",
        "message": PACKDOMAIN_FORBIDDEN,
        "fieldPath": ".spec.template.topologyConstraint.packDomain",
        "reason": "FieldValueForbidden",
        "optionalOldSelf": True,
    },
    {
        "rule": "oldSelf.hasValue() || self.spec.template.cliques.all(q, !has(q.topologyConstraint) || "
        "!has(q.topologyConstraint.packDomain))",
        "message": PACKDOMAIN_FORBIDDEN,
        "fieldPath": ".spec.template.cliques",
        "reason": "FieldValueForbidden",
        "optionalOldSelf": True,
    },
    {
        "rule": "oldSelf.hasValue() || !has(self.spec.template.podCliqueScalingGroups) || "
        "self.spec.template.podCliqueScalingGroups.all(g, !has(g.topologyConstraint) || "
        "!has(g.topologyConstraint.packDomain))",
        "message": PACKDOMAIN_FORBIDDEN,
        "fieldPath": ".spec.template.podCliqueScalingGroups",
        "reason": "FieldValueForbidden",
        "optionalOldSelf": True,
    },
)


class PodCliqueSet(Resource):
    crd: ClassVar[Crd] = Crd(validations=PODCLIQUESET_RULES)

    spec: PodCliqueSetSpec = Field(description="Desired state of the PodCliqueSet.")
    status: PodCliqueSetStatus | None = Field(None, description="Observed state of the PodCliqueSet.")
