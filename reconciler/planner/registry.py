"""Every kind of child the reconciler keeps for a PodCliqueSet, one entry each (docs/reconciler.md, "Adding a
child kind"). Like Grove's registry of component operators (one per kind, each with its own sync and
delete), but the entries are data and the planner modules stay pure functions of the snapshot:

- the manager (reconciler/manager.py) watches every kind here, on the Kubernetes layer's resource for its
  apiVersion and kind (`kube.resources.lookup`), and puts the objects labelled part of a PodCliqueSet in
  its snapshot under the entry's `key` (`Snapshot.existing(key)`);
- `plan.plan` syncs every entry that has a `desired` function, in the order of `CHILD_KINDS`: creates what
  is missing, updates what differs as `sync` says, and deletes ours that are no longer desired when the
  entry names the component label of those it may `prune`;
- `plan.teardown`, when the PodCliqueSet is being deleted, deletes every entry's objects, lowest
  `teardown` first.

The structural kinds (PodCliques, scaling groups, PodGangs, pods) have no `desired` function: a pass plans
them in an order of its own (PodCliques, their pods, a rolling update's steps, the PodGangs that list the
pods, then statuses), so `plan.plan` does it itself; their entries still give the watch, the snapshot key,
how they are synced and the teardown order.

Pure: imports no Kubernetes client (tests/unit/test_layers.py).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from grove_api import constants as c

from . import hpas, rbac, services
from .snapshot import Obj, Snapshot


class Sync(enum.Enum):
    """How an existing child is brought to its desired state (`plan.sync`, `plan.sync_whole_spec`)."""

    # Server-side apply of the fields we set: for kinds other writers fill in too (a Service's spec).
    APPLY = "apply"
    # The whole spec replaced when it has fields the desired one lacks, the replicas scalers own kept:
    # for kinds whose spec is all ours.
    REPLACE_SPEC = "replace-spec"
    # Never changed in place: created and deleted (pods, `pods.pod_actions`).
    NONE = "none"


@dataclass(frozen=True)
class ChildKind:
    """One kind of child of a PodCliqueSet: how it is watched, held, planned and torn down."""

    key: str  # where the snapshot holds them: Snapshot.existing(key)
    api_version: str
    kind: str
    # Position in teardown: kinds with a lower one are deleted first.
    teardown: int
    sync: Sync = Sync.APPLY
    # The planner module's desired objects of this kind; None: planned by `plan.plan` itself (structural).
    desired: Callable[[Snapshot], list[Obj]] | None = None
    # The `app.kubernetes.io/component` label of the objects of this kind that `plan.plan` deletes when
    # they are no longer desired (scaled-in replicas); None: never pruned (or, structural, pruned by
    # `plan.plan` itself).
    prune: str | None = None
    # Controlled by a PodClique rather than by the PodCliqueSet or one of its scaling groups: teardown
    # deletes all of them instead of only those `Snapshot.controls`.
    controlled_by_podclique: bool = False


PODCLIQUES = ChildKind("podcliques", c.API_VERSION, c.KIND_PODCLIQUE, teardown=1, sync=Sync.REPLACE_SPEC)
SCALING_GROUPS = ChildKind(
    "scaling_groups", c.API_VERSION, c.KIND_PODCLIQUESCALINGGROUP, teardown=2, sync=Sync.REPLACE_SPEC
)
PODGANGS = ChildKind("podgangs", c.SCHEDULER_API_VERSION, c.KIND_PODGANG, teardown=3, sync=Sync.REPLACE_SPEC)
PODS = ChildKind("pods", "v1", "Pod", teardown=0, sync=Sync.NONE, controlled_by_podclique=True)
SERVICE_ACCOUNTS = ChildKind(
    "service_accounts", "v1", "ServiceAccount", teardown=5, desired=rbac.service_accounts
)
ROLES = ChildKind("roles", rbac.RBAC_V1, "Role", teardown=7, desired=rbac.roles)
ROLE_BINDINGS = ChildKind(
    "role_bindings", rbac.RBAC_V1, "RoleBinding", teardown=8, desired=rbac.role_bindings
)
SECRETS = ChildKind("secrets", "v1", "Secret", teardown=6, desired=rbac.token_secrets)
SERVICES = ChildKind(
    "services",
    "v1",
    "Service",
    teardown=4,
    desired=services.headless_services,
    prune=c.COMPONENT_HEADLESS_SERVICE,
)
HPAS = ChildKind(
    "hpas",
    hpas.API_VERSION,
    hpas.KIND,
    teardown=9,
    sync=Sync.APPLY,
    desired=hpas.autoscalers,
    prune=c.COMPONENT_HPA,
)

# In the order `plan.plan` syncs the kinds with a `desired` function: grove-initc's RBAC, then Services,
# then HPAs.
CHILD_KINDS: tuple[ChildKind, ...] = (
    PODCLIQUES,
    SCALING_GROUPS,
    PODGANGS,
    PODS,
    SERVICE_ACCOUNTS,
    ROLES,
    ROLE_BINDINGS,
    SECRETS,
    SERVICES,
    HPAS,
)
