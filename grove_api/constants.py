"""Grove's identifiers: groups, kinds, label and annotation keys, finalizers, env vars, gate names.

These strings are a compatibility contract with Grove (its samples, tutorials and tooling select on them),
so they are spelled exactly as Grove spells them and defined once, here.
"""

from typing import Final

# --- API groups, versions, kinds ---------------------------------------------------------------------
GROUP: Final = "grove.io"
SCHEDULER_GROUP: Final = "scheduler.grove.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
SCHEDULER_API_VERSION: Final = f"{SCHEDULER_GROUP}/{VERSION}"

KIND_PODCLIQUESET: Final = "PodCliqueSet"
KIND_PODCLIQUE: Final = "PodClique"
KIND_PODCLIQUESCALINGGROUP: Final = "PodCliqueScalingGroup"
KIND_PODGANG: Final = "PodGang"
KIND_CLUSTERTOPOLOGYBINDING: Final = "ClusterTopologyBinding"

PLURAL_PODCLIQUESET: Final = "podcliquesets"
PLURAL_PODCLIQUE: Final = "podcliques"
PLURAL_PODCLIQUESCALINGGROUP: Final = "podcliquescalinggroups"
PLURAL_PODGANG: Final = "podgangs"
PLURAL_CLUSTERTOPOLOGYBINDING: Final = "clustertopologybindings"
# Ours: the kubectl category of every kind above, so `kubectl get grove` lists them all (like `get all`).
CRD_CATEGORY: Final = "grove"

# --- Operator identity -------------------------------------------------------------------------------
OPERATOR_NAME: Final = "grove-operator"
FIELD_MANAGER: Final = "grove-operator"

# --- Labels ------------------------------------------------------------------------------------------
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
LABEL_PART_OF: Final = "app.kubernetes.io/part-of"
LABEL_NAME: Final = "app.kubernetes.io/name"
LABEL_COMPONENT: Final = "app.kubernetes.io/component"
LABEL_PODCLIQUE: Final = "grove.io/podclique"
LABEL_PODGANG: Final = "grove.io/podgang"
LABEL_BASE_PODGANG: Final = "grove.io/base-podgang"
LABEL_PCS_REPLICA_INDEX: Final = "grove.io/podcliqueset-replica-index"
LABEL_PCSG: Final = "grove.io/podcliquescalinggroup"
LABEL_PCSG_REPLICA_INDEX: Final = "grove.io/podcliquescalinggroup-replica-index"
LABEL_POD_INDEX: Final = "grove.io/podclique-pod-index"
LABEL_POD_TEMPLATE_HASH: Final = "grove.io/pod-template-hash"
LABEL_SCHEDULER_NAME: Final = "grove.io/scheduler-name"

MANAGED_BY_VALUE: Final = OPERATOR_NAME
# The label selector of everything the operator manages (treat as read-only).
MANAGED_SELECTOR: Final[dict[str, str]] = {LABEL_MANAGED_BY: MANAGED_BY_VALUE}

# Values of app.kubernetes.io/component.
COMPONENT_HEADLESS_SERVICE: Final = "pcs-headless-service"
COMPONENT_POD_ROLE: Final = "pod-role"
COMPONENT_POD_ROLE_BINDING: Final = "pod-role-binding"
COMPONENT_POD_SERVICE_ACCOUNT: Final = "pod-service-account"
COMPONENT_POD_SA_TOKEN_SECRET: Final = "pod-sa-token-secret"
COMPONENT_PCSG: Final = "pcs-podcliquescalinggroup"
COMPONENT_HPA: Final = "pcs-hpa"
COMPONENT_PODGANG: Final = "podgang"
COMPONENT_PCS_PODCLIQUE: Final = "pcs-podclique"
COMPONENT_PCSG_PODCLIQUE: Final = "pcsg-podclique"
COMPONENT_RESOURCE_CLAIM: Final = "resource-claim"

# --- Annotations -------------------------------------------------------------------------------------
ANNOTATION_RECONCILE_TRIGGER: Final = "grove.io/reconcile-trigger"
ANNOTATION_DISABLE_PROTECTION: Final = "grove.io/disable-managed-resource-protection"
ANNOTATION_TOPOLOGY_NAME: Final = "grove.io/topology-name"
ANNOTATION_MNNVL_GROUP: Final = "grove.io/mnnvl-group"
# Ours, on PodCliques with startsAfter and so on their pods: "<parent PodClique>:<its minAvailable>,…", what
# the pod webhook turns into grove-initc's --podcliques flags (it cannot look parents up itself).
ANNOTATION_STARTUP_DEPENDENCIES: Final = "grove.io/startup-dependencies"
# Ours, on pods of a gang the admitter admitted on create, before they existed (`admitter.on_create`):
# created already pinned to their planned node, so the pod webhook does not gate them. Value: "true".
ANNOTATION_ADMITTED_ON_CREATE: Final = "scheduler.grove.io/admitted-on-create"

# --- Finalizers --------------------------------------------------------------------------------------
FINALIZER_PODCLIQUESET: Final = "grove.io/podcliqueset.grove.io"
FINALIZER_PODCLIQUE: Final = "grove.io/podclique.grove.io"
FINALIZER_PODCLIQUESCALINGGROUP: Final = "grove.io/podcliquescalinggroup.grove.io"

# --- Scheduling gate and init container --------------------------------------------------------------
SCHEDULING_GATE_PODGANG_PENDING: Final = "grove.io/podgang-pending-creation"
INIT_CONTAINER_NAME: Final = "grove-initc"

# --- Env vars injected into workload pods ------------------------------------------------------------
ENV_PCS_NAME: Final = "GROVE_PCS_NAME"
ENV_PCS_INDEX: Final = "GROVE_PCS_INDEX"
ENV_PCLQ_NAME: Final = "GROVE_PCLQ_NAME"
ENV_HEADLESS_SERVICE: Final = "GROVE_HEADLESS_SERVICE"
ENV_PCLQ_POD_INDEX: Final = "GROVE_PCLQ_POD_INDEX"
ENV_PCSG_NAME: Final = "GROVE_PCSG_NAME"
ENV_PCSG_INDEX: Final = "GROVE_PCSG_INDEX"
ENV_PCSG_TEMPLATE_NUM_PODS: Final = "GROVE_PCSG_TEMPLATE_NUM_PODS"

# Env vars read by the operator.
ENV_OPERATOR_SERVICE_ACCOUNT_NAME: Final = "GROVE_OPERATOR_SERVICE_ACCOUNT_NAME"
ENV_OPERATOR_IMAGE: Final = "GROVE_OPERATOR_IMAGE"  # ours: the image the operator runs from (chart)

# --- Condition types ---------------------------------------------------------------------------------
CONDITION_MIN_AVAILABLE_BREACHED: Final = "MinAvailableBreached"
CONDITION_PODCLIQUE_SCHEDULED: Final = "PodCliqueScheduled"
CONDITION_GANG_TERMINATION_IN_PROGRESS: Final = "GangTerminationInProgress"
CONDITION_TOPOLOGY_LEVELS_UNAVAILABLE: Final = "TopologyLevelsUnavailable"
CONDITION_PODGANG_INITIALIZED: Final = "Initialized"
# Ours, on the PodCliqueSet: every replica is available (`kubectl wait --for=condition=Available pcs/NAME`).
CONDITION_AVAILABLE: Final = "Available"

# --- Limits and defaults -----------------------------------------------------------------------------
# len(pcs)+len(clique) (standalone) or len(pcs)+len(pcsg)+len(clique) may not exceed this, so that pod
# names and hostnames (which add indices, dashes and a 5-character suffix) stay valid DNS labels.
MAX_COMBINED_NAME_LENGTH: Final = 45
DEFAULT_TERMINATION_DELAY: Final = "4h0m0s"

# --- Enums -------------------------------------------------------------------------------------------
STARTUP_ANY_ORDER: Final = "CliqueStartupTypeAnyOrder"
STARTUP_IN_ORDER: Final = "CliqueStartupTypeInOrder"
STARTUP_EXPLICIT: Final = "CliqueStartupTypeExplicit"
UPDATE_ROLLING_RECREATE: Final = "RollingRecreate"
UPDATE_ON_DELETE: Final = "OnDelete"

# --- Scheduler backends ------------------------------------------------------------------------------
SCHEDULER_DEFAULT: Final = "default-scheduler"
RESOURCE_SHARING_ALL_REPLICAS: Final = "AllReplicas"
RESOURCE_SHARING_PER_REPLICA: Final = "PerReplica"
# "Admitted" is ours: the gang admitter released the gang's minimum (pinned, ungated), not yet all Running.
PODGANG_PHASES: Final = ("Pending", "Admitted", "Starting", "Running", "Failed", "Succeeded")
CONDITION_PODGANG_ADMITTED: Final = "Admitted"  # ours, written by the gang admitter
