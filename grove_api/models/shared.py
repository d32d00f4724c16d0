"""Types shared by several Grove kinds: the clique spec, autoscaling, topology and resource sharing."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import Field

from grove_api import constants as c

from .base import Crd, K8sModel

TopologyDomain = Annotated[str, Crd(min_length=1, max_length=63, pattern=r"^[a-z][a-z0-9-]*$")]


class TopologyPackConstraint(K8sModel):
    """Pack a group of pods into one topology domain, as a hard or a soft rule."""

    crd: ClassVar[Crd] = Crd(
        validations=(
            {
                "rule": "has(self.required) || has(self.preferred)",
                "message": "pack must specify at least one of required or preferred",
            },
        )
    )

    required: TopologyDomain | None = Field(
        None,
        description="Domain (e.g. rack, block, zone) that all pods of the group must share; "
        "the group is not scheduled until such a domain has room for it.",
    )
    preferred: TopologyDomain | None = Field(
        None,
        description="Domain the scheduler tries to keep the pods in, falling back to a broader placement.",
    )


class TopologyConstraint(K8sModel):
    """Where the pods of a PodCliqueSet, scaling group or clique should be placed."""

    crd: ClassVar[Crd] = Crd(
        validations=(
            {
                "rule": "has(self.pack) || has(self.packDomain)",
                "message": "topologyConstraint must specify pack or deprecated packDomain",
                "fieldPath": ".pack",
                "reason": "FieldValueRequired",
            },
            {
                "rule": "!(has(self.packDomain) && has(self.pack) && has(self.pack.required))",
                "message": "must not set both pack.required and deprecated packDomain",
                "fieldPath": ".pack.required",
            },
        )
    )

    topology_name: str | None = Field(
        None,
        description="Name of the ClusterTopologyBinding whose levels the domains refer to. "
        "Inherited from the enclosing level when empty. Immutable after creation.",
    )
    pack: TopologyPackConstraint | None = Field(
        None, description="Required and/or preferred domain to pack the pods into."
    )
    pack_domain: TopologyDomain | None = Field(
        None,
        description="Deprecated: same as pack.required. Refused on new objects; existing objects may "
        "move it to pack.required.",
    )


class AutoScalingConfig(K8sModel):
    """Horizontal autoscaling: the operator creates a HorizontalPodAutoscaler on the scale subresource."""

    min_replicas: Annotated[int | None, Crd(format="int32")] = Field(
        None,
        description="Lower bound for the autoscaler. Defaults to the replicas of the clique or scaling "
        "group; must not be below minAvailable.",
    )
    max_replicas: Annotated[int, Crd(format="int32")] = Field(
        description="Upper bound for the autoscaler; must be at least minReplicas."
    )
    metrics: Annotated[
        list[Annotated[dict[str, Any], Crd(embedded="io.k8s.api.autoscaling.v2.MetricSpec")]] | None,
        Crd(list_type="atomic"),
    ] = Field(
        None,
        description="Metrics the autoscaler follows (autoscaling/v2 MetricSpec). When empty, 80% average "
        "CPU utilisation is used.",
    )


SCOPES = (c.RESOURCE_SHARING_ALL_REPLICAS, c.RESOURCE_SHARING_PER_REPLICA)


class ResourceSharingSpec(K8sModel):
    """Share a ResourceClaim made from a template between pods (Dynamic Resource Allocation)."""

    name: str = Field(
        description="Name of the template: one of spec.template.resourceClaimTemplates, else an existing "
        "ResourceClaimTemplate object."
    )
    namespace: str | None = Field(
        None,
        description="Namespace of an external ResourceClaimTemplate (default: the PodCliqueSet's). Must be "
        "empty when name refers to an internal template.",
    )
    scope: Annotated[str, Crd(enum=SCOPES)] = Field(
        description="AllReplicas: one claim shared by all replicas of the owner. "
        "PerReplica: one claim per replica of the owner."
    )


class PodCliqueSpec(K8sModel):
    """A set of identical pods playing one role (e.g. prefill leader), like a ReplicaSet with gang
    termination."""

    role_name: str | None = Field(
        None,
        description="Role the pods play in the application. Defaults to the clique name. Immutable.",
    )
    pod_spec: Annotated[dict[str, Any], Crd(embedded="io.k8s.api.core.v1.PodSpec")] = Field(
        description="Specification of the pods of this clique (a standard Kubernetes PodSpec)."
    )
    replicas: Annotated[int | None, Crd(format="int32")] = Field(
        None, description="Number of pods. Defaults to 1; must be at least 1 in a template."
    )
    min_available: Annotated[int | None, Crd(format="int32")] = Field(
        None,
        description="Minimum number of pods that must be scheduled together (the gang minimum) and stay "
        "available; below it for longer than terminationDelay the gang is recreated. Defaults to "
        "replicas; 1 <= minAvailable <= replicas. Immutable.",
    )
    starts_after: list[str] | None = Field(
        None,
        description="Cliques whose minAvailable pods must be Ready before pods of this clique start "
        "(only with cliqueStartupType CliqueStartupTypeExplicit). Immutable.",
    )
    auto_scaling_config: AutoScalingConfig | None = Field(
        None,
        description="Horizontal autoscaling of this clique. Not allowed for cliques of a scaling group "
        "(the group is scaled instead).",
    )
