"""pydantic v2 models of Grove's API kinds (camelCase on the wire, unknown fields preserved)."""

from .base import Condition, K8sModel, LastError, NamespacedName, ObjectMeta, OwnerReference, Resource
from .clustertopology import ClusterTopologyBinding
from .podclique import PodClique
from .podcliqueset import PodCliqueSet
from .podgang import PodGang
from .scalinggroup import PodCliqueScalingGroup

__all__ = [
    "ClusterTopologyBinding",
    "Condition",
    "K8sModel",
    "LastError",
    "NamespacedName",
    "ObjectMeta",
    "OwnerReference",
    "PodClique",
    "PodCliqueScalingGroup",
    "PodCliqueSet",
    "PodGang",
    "Resource",
]
