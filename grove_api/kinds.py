"""The five kinds of Grove's API as CRD facts: names, scope, scale subresource, printer columns."""

from __future__ import annotations

from dataclasses import dataclass

from grove_api import constants as c
from grove_api.models import ClusterTopologyBinding, PodClique, PodCliqueScalingGroup, PodCliqueSet, PodGang
from grove_api.models.base import Resource


@dataclass(frozen=True)
class PrinterColumn:
    name: str
    json_path: str
    type: str = "integer"
    priority: int = 0
    description: str = ""


@dataclass(frozen=True)
class Scale:
    spec_replicas_path: str
    status_replicas_path: str
    label_selector_path: str


@dataclass(frozen=True)
class Kind:
    model: type[Resource]
    group: str
    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]
    namespaced: bool
    scale: Scale | None
    columns: tuple[PrinterColumn, ...]
    description: str

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{self.group}"

    @property
    def api_version(self) -> str:
        return f"{self.group}/{c.VERSION}"


AGE = PrinterColumn("Age", ".metadata.creationTimestamp", "date")


def _min_breached(priority: int = 1) -> PrinterColumn:
    return PrinterColumn(
        "MinBreached",
        f'.status.conditions[?(@.type=="{c.CONDITION_MIN_AVAILABLE_BREACHED}")].status',
        "string",
        priority,
    )


PODCLIQUESET = Kind(
    model=PodCliqueSet,
    group=c.GROUP,
    kind=c.KIND_PODCLIQUESET,
    plural=c.PLURAL_PODCLIQUESET,
    singular="podcliqueset",
    short_names=("pcs",),
    namespaced=True,
    scale=Scale(".spec.replicas", ".status.replicas", ".status.hpaPodSelector"),
    columns=(
        PrinterColumn("Replicas", ".spec.replicas"),
        PrinterColumn("Available", ".status.availableReplicas"),
        PrinterColumn("Updated", ".status.updatedReplicas"),
        PrinterColumn("PCLQs-Updated", ".status.updateProgress.updatedPodCliquesCount"),
        PrinterColumn("PCLQs-Total", ".status.updateProgress.totalPodCliquesCount"),
        PrinterColumn("PCSGs-Updated", ".status.updateProgress.updatedPodCliqueScalingGroupsCount"),
        PrinterColumn("PCSGs-Total", ".status.updateProgress.totalPodCliqueScalingGroupsCount"),
        AGE,
    ),
    description="PodCliqueSet is a whole AI inference (or training) system: a set of cliques (roles) and "
    "scaling groups, replicated as a unit. Each replica is gang-scheduled as one base PodGang.",
)

PODCLIQUE = Kind(
    model=PodClique,
    group=c.GROUP,
    kind=c.KIND_PODCLIQUE,
    plural=c.PLURAL_PODCLIQUE,
    singular="podclique",
    short_names=("pclq",),
    namespaced=True,
    scale=Scale(".spec.replicas", ".status.replicas", ".status.hpaPodSelector"),
    columns=(
        PrinterColumn("MinAvail", ".spec.minAvailable"),
        PrinterColumn("Replicas", ".spec.replicas"),
        PrinterColumn("Ready", ".status.readyReplicas"),
        PrinterColumn("Scheduled", ".status.scheduledReplicas"),
        PrinterColumn("Updated", ".status.updatedReplicas"),
        PrinterColumn("Gated", ".status.scheduleGatedReplicas", priority=1),
        _min_breached(),
        AGE,
    ),
    description="PodClique is the set of identical pods of one role in one PodCliqueSet replica (or "
    "scaling-group replica). Created by the operator from a clique template.",
)

PODCLIQUESCALINGGROUP = Kind(
    model=PodCliqueScalingGroup,
    group=c.GROUP,
    kind=c.KIND_PODCLIQUESCALINGGROUP,
    plural=c.PLURAL_PODCLIQUESCALINGGROUP,
    singular="podcliquescalinggroup",
    short_names=("pcsg",),
    namespaced=True,
    scale=Scale(".spec.replicas", ".status.replicas", ".status.selector"),
    columns=(
        PrinterColumn("MinAvail", ".spec.minAvailable"),
        PrinterColumn("Replicas", ".spec.replicas"),
        PrinterColumn("Available", ".status.availableReplicas"),
        PrinterColumn("Scheduled", ".status.scheduledReplicas"),
        PrinterColumn("Updated", ".status.updatedReplicas"),
        PrinterColumn("PCLQs-Updated", ".status.updateProgress.updatedPodCliquesCount"),
        PrinterColumn("PCLQs-Total", ".status.updateProgress.totalPodCliquesCount"),
        _min_breached(),
        AGE,
    ),
    description="PodCliqueScalingGroup is the cliques of one scaling group in one PodCliqueSet replica; "
    "scaling it adds or removes whole replicas of the group (e.g. leader + workers).",
)

PODGANG = Kind(
    model=PodGang,
    group=c.SCHEDULER_GROUP,
    kind=c.KIND_PODGANG,
    plural=c.PLURAL_PODGANG,
    singular="podgang",
    short_names=("pg",),
    namespaced=True,
    scale=None,
    columns=(
        PrinterColumn("Phase", ".status.phase", "string"),
        PrinterColumn(
            "Admission",
            '.status.conditions[?(@.type=="Admitted")].reason',
            "string",
            description="Reason of the Admitted condition: why the gang waits, or that it was admitted",
        ),
        PrinterColumn(
            "Message",
            '.status.conditions[?(@.type=="Admitted")].message',
            "string",
            description="What the gang waits for, with numbers",
        ),
        AGE,
    ),
    description="PodGang is a gang of pods that must be scheduled together: for each podgroup, at least "
    "minReplicas pods are placed or none is.",
)

CLUSTERTOPOLOGYBINDING = Kind(
    model=ClusterTopologyBinding,
    group=c.GROUP,
    kind=c.KIND_CLUSTERTOPOLOGYBINDING,
    plural=c.PLURAL_CLUSTERTOPOLOGYBINDING,
    singular="clustertopologybinding",
    short_names=("ct",),
    namespaced=False,
    scale=None,
    columns=(PrinterColumn("Domains", ".spec.levels[*].domain", "string"), AGE),
    description="ClusterTopologyBinding names the levels of the cluster's network topology and the node "
    "labels that identify them, for topology-aware placement.",
)

ALL_KINDS: tuple[Kind, ...] = (
    PODCLIQUESET,
    PODCLIQUE,
    PODCLIQUESCALINGGROUP,
    PODGANG,
    CLUSTERTOPOLOGYBINDING,
)
