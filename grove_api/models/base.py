"""Base model for Kubernetes objects and the schema markers the CRD generator reads.

Every model keeps fields it does not know (`extra="allow"`), so an object read from the apiserver, or a
manifest from a newer Grove, survives a round trip through our code unchanged. Optional fields default to
None and are dropped on output: a model never invents a value; defaults are applied explicitly by the
defaulting webhook.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


@dataclass(frozen=True)
class Crd:
    """OpenAPI facts for one field that Python types cannot express (read by `grove_api.crdgen`).

    `embedded` names a definition of the Kubernetes OpenAPI (e.g. `io.k8s.api.core.v1.PodSpec`) whose full
    schema is inlined in the CRD, so `kubectl explain` documents it; the model keeps such subtrees opaque.
    """

    enum: tuple[str, ...] | None = None
    default: Any = None
    format: str | None = None
    minimum: int | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    min_items: int | None = None
    list_type: str | None = None
    list_map_keys: tuple[str, ...] | None = None
    map_type: str | None = None
    embedded: str | None = None
    preserve_unknown_fields: bool = False
    required: bool | None = None  # overrides "required unless it has a default"
    validations: tuple[dict[str, Any], ...] = field(default_factory=tuple)


class K8sModel(BaseModel):
    """camelCase on the wire, snake_case in Python, unknown fields kept."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="allow",
    )

    # Schema facts about the object as a whole (e.g. CEL rules), for the CRD generator.
    crd: ClassVar[Crd | None] = None

    def to_dict(self) -> dict[str, Any]:
        """The wire form: camelCase keys, no unset (None) fields, unknown fields preserved."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        return cls.model_validate(data)


class OwnerReference(K8sModel):
    api_version: str
    kind: str
    name: str
    uid: str
    controller: bool | None = None
    block_owner_deletion: bool | None = None


class ObjectMeta(K8sModel):
    """The part of metadata the operator reads or writes; everything else passes through untouched."""

    name: str | None = None
    generate_name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    resource_version: str | None = None
    generation: int | None = None
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    owner_references: list[OwnerReference] | None = None
    finalizers: list[str] | None = None


class Condition(K8sModel):
    """metav1.Condition: lastTransitionTime moves only when status flips."""

    type: str = Field(description="Type of condition in CamelCase.")
    status: str = Field(description="Status of the condition: True, False or Unknown.")
    observed_generation: int | None = Field(
        None, description="The .metadata.generation the condition was set for."
    )
    last_transition_time: str = Field(
        description="Last time the condition moved from one status to another (RFC 3339)."
    )
    reason: str = Field(description="Machine-readable CamelCase reason for the last transition.")
    message: str = Field(description="Human-readable details about the transition.")


# metav1 conditions are a map keyed by type (+listType=map, +listMapKey=type): with server-side apply,
# two writers (the reconciler and the gang admitter on a PodGang) each own their own condition types.
Conditions = Annotated[list[Condition], Crd(list_type="map", list_map_keys=("type",))]


class LastError(K8sModel):
    """An error the operator met in its last reconcile of the object."""

    code: str = Field(description="Grove error code, e.g. ERR_SYNC_PODCLIQUE.")
    description: str = Field(description="What went wrong.")
    observed_at: str = Field(description="When the error was observed (RFC 3339).")


class NamespacedName(K8sModel):
    namespace: str = Field(description="Namespace of the referenced object.")
    name: str = Field(description="Name of the referenced object.")


class Resource(K8sModel):
    """A top-level object: apiVersion, kind, metadata."""

    api_version: str | None = None
    kind: str | None = None
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
