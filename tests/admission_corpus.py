"""The admission corpus: PodCliqueSet documents and what our webhooks must answer.

Ported from every case of Grove's webhook unit tests (TestResourceNamingValidation,
TestValidateSchedulerNames, TestPodCliqueScalingGroupConfigValidation, TestPodCliqueUpdateValidation,
TestImmutableFieldsValidation, TestPodCliqueScalingGroupConfigsUpdateValidation, TestValidateCliqueDependencies,
TestValidateScaleConfig, TestEnvVarValidation, TestValidateResourceClaimTemplates, resource sharing, topology and
MNNVL tests, defaulting tests), plus our own. Paths are ours where Grove's are quirky (docs/decisions.md):
podSpec errors have no extra ".spec", immutability errors carry the index, a name-budget violation is reported
once, at the offending clique.

Each case is a submitted object (before defaulting: the pipeline runs the defaulting webhook first, as the
apiserver does), an optional stored old object (UPDATE), and the exact multiset of expected errors as
"<Type>@<path>". `apiserver=True` marks cases that also run through the real kube-apiserver.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.builders import DELETE, clique, edit, group, pcs, pod_spec

T = "spec.template"
C0 = f"{T}.cliques[0]"
C1 = f"{T}.cliques[1]"
G0 = f"{T}.podCliqueScalingGroups[0]"
EXPLICIT = "CliqueStartupTypeExplicit"
IN_ORDER = "CliqueStartupTypeInOrder"
TAS = {"topologyAwareScheduling": {"enabled": True}}
KUBE_KAI = {"scheduler": {"profiles": [{"name": "default-scheduler"}, {"name": "kai-scheduler"}]}}
KAI_DEFAULT = {"scheduler": {"profiles": [{"name": "kai-scheduler"}], "defaultProfileName": "kai-scheduler"}}
LPX = {"scheduler": {"profiles": [{"name": "lpx-scheduler"}]}}
MNNVL_ON = {"network": {"autoMNNVLEnabled": True}}
TOPO = {"grove-topology": ["zone", "block", "rack", "host"]}
MNNVL = "grove.io/mnnvl-group"
KAI_QUEUE = {"labels": {"kai.scheduler/queue": "team-a"}}


@dataclass(frozen=True)
class Case:
    name: str
    obj: dict[str, Any]
    errors: tuple[str, ...] = ()  # "<ErrorType name>@<path>", e.g. "INVALID@spec.replicas"
    old: dict[str, Any] | None = None
    contains: tuple[str, ...] = ()  # substrings of the denial message
    warnings: tuple[str, ...] = ()  # substrings that must appear among the warnings
    config: dict[str, Any] = field(default_factory=dict)
    topologies: dict[str, list[str]] = field(default_factory=dict)
    topology_lookup_fails: bool = False
    apiserver: bool = False

    @property
    def operation(self) -> str:
        return "CREATE" if self.old is None else "UPDATE"


def tc(
    required: str | None = None,
    preferred: str | None = None,
    name: str | None = "grove-topology",
    **extra: Any,
) -> dict[str, Any]:
    """A topologyConstraint."""
    out: dict[str, Any] = {}
    if name:
        out["topologyName"] = name
    pack = {k: v for k, v in (("required", required), ("preferred", preferred)) if v}
    if pack:
        out["pack"] = pack
    out.update(extra)
    return out


def two(**kw: Any) -> dict[str, Any]:
    return pcs(cliques=[clique("a"), clique("b")], **kw)


def grouped(**kw: Any) -> dict[str, Any]:
    """Standalone clique a, scaling group g of cliques b and c."""
    return pcs(cliques=[clique("a"), clique("b"), clique("c")], groups=[group("g", ["b", "c"], **kw)])


def env(*names: str) -> list[dict[str, str]]:
    return [{"name": n, "value": "v"} for n in names]


def with_env(
    container_env: list[dict[str, str]], init_env: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    spec = pod_spec()
    spec["containers"][0]["env"] = container_env
    if init_env is not None:
        spec["initContainers"] = [{"name": "init", "image": "busybox", "env": init_env}]
    return spec


def rct(name: str, requests: bool = True) -> dict[str, Any]:
    spec = {
        "spec": {
            "devices": {"requests": [{"name": "gpu", "exactly": {"deviceClassName": "gpu.example.com"}}]}
        }
    }
    return {"name": name, "templateSpec": spec if requests else {}}


def share(name: str, scope: str = "AllReplicas", **extra: Any) -> dict[str, Any]:
    return {"name": name, "scope": scope, **extra}


def annotated(level: str, value: str | None, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """A PodCliqueSet (with clique a and group g of [b]) carrying the MNNVL annotation at one level."""
    doc = base or pcs(cliques=[clique("a"), clique("b")], groups=[group("g", ["b"])])
    if value is None:
        return doc
    where = {
        "pcs": "metadata.annotations",
        "clique": "spec.template.cliques.0.annotations",
        "group": "spec.template.podCliqueScalingGroups.0.annotations",
    }[level]
    return edit(doc, where, {MNNVL: value})


def mnnvl_path(level: str) -> str:
    return {"pcs": "metadata.annotations", "clique": f"{C0}.annotations", "group": f"{G0}.annotations"}[
        level
    ] + f".{MNNVL}"


def topo_pcs(
    pcs_tc: dict[str, Any] | None = None,
    clique_tc: dict[str, Any] | None = None,
    group_tc: dict[str, Any] | None = None,
    member_tc: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Standalone clique a, group g of [b]; constraints at any level."""
    a = clique("a", **({"topologyConstraint": clique_tc} if clique_tc else {}))
    b = clique("b", **({"topologyConstraint": member_tc} if member_tc else {}))
    g = group("g", ["b"], **({"topologyConstraint": group_tc} if group_tc else {}))
    extra = {"topologyConstraint": pcs_tc} if pcs_tc else {}
    return pcs(cliques=[a, b], groups=[g], **extra)


# Stored objects for UPDATE cases are defaulted, as the apiserver stores them.
def stored(doc: dict[str, Any]) -> dict[str, Any]:
    from grove_api.defaulting import default_podcliqueset

    return default_podcliqueset(doc)


TRAINING_AS_WRITTEN = {
    "apiVersion": "grove.io/v1alpha1",
    "kind": "PodCliqueSet",
    "metadata": {"name": "distributed-training"},
    "spec": {
        "replicas": 2,
        "template": {
            "cliqueStartupType": EXPLICIT,
            "cliques": [
                {
                    "name": "parameter-server",
                    "spec": {
                        "roleName": "parameter-server",
                        "replicas": 1,
                        "minAvailable": 1,
                        "podSpec": {"containers": [{"name": "ps", "image": "training/ps:latest"}]},
                    },
                },
                {
                    "name": "coordinator",
                    "spec": {
                        "roleName": "coordinator",
                        "replicas": 1,
                        "minAvailable": 1,
                        "startsAfter": ["parameter-server"],
                        "podSpec": {"containers": [{"name": "coord", "image": "training/coord:latest"}]},
                    },
                },
                {
                    "name": "worker",
                    "spec": {
                        "roleName": "worker",
                        "replicas": 4,
                        "minAvailable": 3,
                        "startsAfter": ["coordinator"],
                        "podSpec": {"containers": [{"name": "worker", "image": "training/worker:latest"}]},
                    },
                },
            ],
            "podCliqueScalingGroups": [
                {
                    "name": "training-workers",
                    "cliqueNames": ["worker", "parameter-server"],
                    "replicas": 2,
                    "minAvailable": 1,
                }
            ],
        },
    },
}

CASES: list[Case] = [
    # ---- names (TestResourceNamingValidation + ours) --------------------------------------------------
    Case(
        "valid resource names",
        pcs("inference", cliques=[clique("prefill"), clique("decode")]),
        apiserver=True,
    ),
    Case(
        "PodClique template name exceeds character limit",
        pcs(
            "verylongpodcliquesetnamethatisverylong",
            cliques=[clique("verylongpodcliquenamethatexceedslimit")],
        ),
        ("INVALID@" + f"{C0}.name",),
        contains=("combined resource name length 75 exceeds the 45-character limit",),
        apiserver=True,
    ),
    Case("empty PodClique template name", pcs(cliques=[clique("", role="r")]), ("REQUIRED@" + f"{C0}.name",)),
    Case(
        "PodClique template name with invalid characters",
        pcs(cliques=[clique("Invalid_Name")]),
        ("INVALID@" + f"{C0}.name",),
        apiserver=True,
    ),
    Case(
        "scaling group with long names",
        pcs(
            "verylongpodcliquesetname",
            cliques=[clique("verylongpodcliquename")],
            groups=[group("verylongscalinggroup", ["verylongpodcliquename"])],
        ),
        ("INVALID@" + f"{G0}.cliqueNames[0]",),
        contains=("combined resource name length 65",),
        apiserver=True,
    ),
    Case(
        "scaling group referencing non-existent PodClique",
        pcs(cliques=[clique("a")], groups=[group("g", ["a", "missing"])]),
        ("INVALID@" + f"{G0}.cliqueNames",),
        contains=('"missing"', "unidentified PodClique names found"),
        apiserver=True,
    ),
    Case(
        "maximum valid character usage",
        pcs("pcs", cliques=[clique("cliquename20charssss")], groups=[group("sg", ["cliquename20charssss"])]),
        apiserver=True,
    ),
    Case(
        "training example as written: names over budget, says how to fix",
        TRAINING_AS_WRITTEN,
        ("INVALID@" + f"{G0}.cliqueNames[1]",),
        contains=(
            "combined resource name length 52 exceeds the 45-character limit",
            "shorten the PodCliqueSet 'distributed-training' (20), the PodCliqueScalingGroup 'training-workers' (16) or the PodClique 'parameter-server' (16)",
        ),
        apiserver=True,
    ),
    Case(
        "PodCliqueSet name starting with a digit cannot name Services",
        pcs("1pcs"),
        ("INVALID@metadata.name",),
        contains=("DNS-1035",),
        apiserver=True,
    ),
    Case(
        "PodCliqueSet name with a dot cannot be a hostname",
        pcs("my.pcs"),
        ("INVALID@metadata.name",),
        apiserver=True,
    ),
    Case("uppercase PodCliqueSet name", pcs("PCS"), ("INVALID@metadata.name",)),
    Case(
        "clique name with a dot", pcs(cliques=[clique("a.b")]), ("INVALID@" + f"{C0}.name",), apiserver=True
    ),
    Case(
        "scaling group name with uppercase",
        pcs(cliques=[clique("a")], groups=[group("SG", ["a"])]),
        ("INVALID@" + f"{G0}.name",),
        apiserver=True,
    ),
    Case(
        "empty scaling group name",
        pcs(cliques=[clique("a")], groups=[group(" ", ["a"])]),
        ("REQUIRED@" + f"{G0}.name",),
    ),
    Case("standalone names of exactly 45 characters", pcs("p" * 25, cliques=[clique("c" * 20)])),
    Case(
        "standalone names of 46 characters",
        pcs("p" * 26, cliques=[clique("c" * 20)]),
        ("INVALID@" + f"{C0}.name",),
        contains=("length 46",),
        apiserver=True,
    ),
    Case(
        "scaling-group names of exactly 45 characters",
        pcs("p" * 15, cliques=[clique("c" * 15)], groups=[group("g" * 15, ["c" * 15])]),
    ),
    Case(
        "scaling-group names of 46 characters",
        pcs("p" * 16, cliques=[clique("c" * 15)], groups=[group("g" * 15, ["c" * 15])]),
        ("INVALID@" + f"{G0}.cliqueNames[0]",),
    ),
    # ---- clique replicas / minAvailable ----------------------------------------------------------------
    Case(
        "replicas and minAvailable omitted: defaulted to 1/1 and accepted",
        pcs(cliques=[clique("a", replicas=None, min_available=None)]),
        apiserver=True,
    ),
    Case("replicas 0: defaulted to 1", pcs(cliques=[clique("a", replicas=0, min_available=None)])),
    Case(
        "minAvailable 0",
        pcs(cliques=[clique("a", replicas=2, min_available=0)]),
        ("INVALID@" + f"{C0}.spec.minAvailable",),
        contains=("must be greater than 0",),
        apiserver=True,
    ),
    Case(
        "minAvailable greater than replicas",
        pcs(cliques=[clique("a"), clique("b", replicas=2, min_available=3)]),
        ("INVALID@" + f"{C1}.spec.minAvailable",),
        contains=(f"{C1}.spec.minAvailable: Invalid value: 3: must not be greater than replicas (2)",),
        apiserver=True,
    ),
    Case(
        "negative replicas",
        pcs(cliques=[clique("a", replicas=-1, min_available=1)]),
        ("INVALID@" + f"{C0}.spec.replicas", "INVALID@" + f"{C0}.spec.minAvailable"),
        apiserver=True,
    ),
    Case(
        "negative minAvailable",
        pcs(cliques=[clique("a", replicas=2, min_available=-2)]),
        ("INVALID@" + f"{C0}.spec.minAvailable",),
    ),
    Case("minAvailable equal to replicas", pcs(cliques=[clique("a", replicas=3, min_available=3)])),
    Case("minAvailable defaults to replicas", pcs(cliques=[clique("a", replicas=4, min_available=None)])),
    # ---- startsAfter (TestValidateCliqueDependencies + ours) --------------------------------------------
    Case(
        "explicit: valid dependencies with no cycles",
        pcs(
            startup=EXPLICIT,
            cliques=[clique("a"), clique("b", starts_after=["a"]), clique("c", starts_after=["b"])],
        ),
        apiserver=True,
    ),
    Case(
        "explicit: self dependency",
        pcs(startup=EXPLICIT, cliques=[clique("a", starts_after=["a"])]),
        ("INVALID@" + f"{C0}.spec.startsAfter[0]",),
        apiserver=True,
    ),
    Case(
        "explicit: empty dependency",
        pcs(startup=EXPLICIT, cliques=[clique("a", starts_after=[" "])]),
        ("REQUIRED@" + f"{C0}.spec.startsAfter[0]",),
    ),
    Case(
        "explicit: duplicate dependencies",
        pcs(startup=EXPLICIT, cliques=[clique("a"), clique("b", starts_after=["a", "a"])]),
        ("DUPLICATE@" + f"{C1}.spec.startsAfter",),
        apiserver=True,
    ),
    Case(
        "explicit: dependency on unknown clique",
        pcs(startup=EXPLICIT, cliques=[clique("a"), clique("b", starts_after=["x"])]),
        ("NOT_FOUND@" + f"{C1}.spec.startsAfter[0]",),
        contains=("unknown clique",),
        apiserver=True,
    ),
    Case(
        "explicit: circular dependency between two cliques",
        pcs(startup=EXPLICIT, cliques=[clique("a", starts_after=["b"]), clique("b", starts_after=["a"])]),
        ("INVALID@" + f"{T}.cliques",),
        contains=("circular dependencies: a -> b -> a",),
        apiserver=True,
    ),
    Case(
        "explicit: three-way circular dependency",
        pcs(
            startup=EXPLICIT,
            cliques=[
                clique("a", starts_after=["c"]),
                clique("b", starts_after=["a"]),
                clique("c", starts_after=["b"]),
            ],
        ),
        ("INVALID@" + f"{T}.cliques",),
        contains=("circular dependencies",),
        apiserver=True,
    ),
    Case(
        "explicit: two separate cycles",
        pcs(
            startup=EXPLICIT,
            cliques=[
                clique("a", starts_after=["b"]),
                clique("b", starts_after=["a"]),
                clique("c", starts_after=["d"]),
                clique("d", starts_after=["c"]),
            ],
        ),
        ("INVALID@" + f"{T}.cliques", "INVALID@" + f"{T}.cliques"),
    ),
    Case("explicit: no dependencies", pcs(startup=EXPLICIT, cliques=[clique("a"), clique("b")])),
    Case(
        "any order: startsAfter is ignored, with a warning",
        pcs(cliques=[clique("a"), clique("b", starts_after=["a"])]),
        warnings=("startsAfter is ignored",),
    ),
    Case(
        "in order: unknown startsAfter is not checked, with a warning",
        pcs(startup=IN_ORDER, cliques=[clique("a", starts_after=["zzz"])]),
        warnings=("startsAfter is ignored",),
    ),
    # ---- clique autoscaling (TestValidateScaleConfig + ours) ---------------------------------------------
    Case(
        "valid scale config",
        pcs(
            cliques=[
                clique("a", replicas=2, min_available=1, autoscaling={"minReplicas": 2, "maxReplicas": 5})
            ]
        ),
        apiserver=True,
    ),
    Case(
        "minReplicas less than minAvailable",
        pcs(
            cliques=[
                clique("a", replicas=3, min_available=3, autoscaling={"minReplicas": 2, "maxReplicas": 5})
            ]
        ),
        ("INVALID@" + f"{C0}.spec.autoScalingConfig.minReplicas",),
        contains=("must be greater than or equal to podCliqueSpec.minAvailable (3)",),
        apiserver=True,
    ),
    Case(
        "maxReplicas less than minReplicas",
        pcs(
            cliques=[
                clique("a", replicas=3, min_available=1, autoscaling={"minReplicas": 3, "maxReplicas": 2})
            ]
        ),
        (
            "INVALID@" + f"{C0}.spec.autoScalingConfig.maxReplicas",
            "INVALID@" + f"{C0}.spec.autoScalingConfig.maxReplicas",
        ),
        contains=("must be greater than or equal to podCliqueSpec.minReplicas (3)",),
    ),
    Case(
        "minReplicas equal to maxReplicas",
        pcs(
            cliques=[
                clique("a", replicas=2, min_available=1, autoscaling={"minReplicas": 2, "maxReplicas": 2})
            ]
        ),
    ),
    Case(
        "minReplicas defaults to replicas",
        pcs(cliques=[clique("a", replicas=2, min_available=1, autoscaling={"maxReplicas": 4})]),
    ),
    Case(
        "maxReplicas below replicas",
        pcs(
            cliques=[
                clique("a", replicas=4, min_available=1, autoscaling={"minReplicas": 1, "maxReplicas": 3})
            ]
        ),
        ("INVALID@" + f"{C0}.spec.autoScalingConfig.maxReplicas",),
        contains=("must be greater than or equal to replicas (4)",),
    ),
    Case(
        "autoscaling on a scaling-group member",
        pcs(cliques=[clique("a", autoscaling={"maxReplicas": 3})], groups=[group("g", ["a"])]),
        ("INVALID@" + f"{C0}.spec.autoScalingConfig",),
        contains=("scale the group instead",),
        apiserver=True,
    ),
    # ---- pod spec (TestEnvVarValidation + ours) ----------------------------------------------------------
    Case(
        "restartPolicy other than Always: warning",
        pcs(cliques=[clique("a", pod=pod_spec(restartPolicy="OnFailure"))]),
        warnings=("restartPolicy 'OnFailure' will be ignored",),
    ),
    Case("restartPolicy Always: no warning", pcs()),
    Case(
        "topologySpreadConstraints on create",
        pcs(
            cliques=[
                clique(
                    "a",
                    pod=pod_spec(
                        topologySpreadConstraints=[
                            {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}
                        ]
                    ),
                )
            ]
        ),
        ("FORBIDDEN@" + f"{C0}.spec.podSpec.topologySpreadConstraints",),
        apiserver=True,
    ),
    Case(
        "nodeName on create",
        pcs(cliques=[clique("a", pod=pod_spec(nodeName="fake-node-001"))]),
        ("FORBIDDEN@" + f"{C0}.spec.podSpec.nodeName",),
        apiserver=True,
    ),
    Case(
        "valid env var names",
        pcs(cliques=[clique("a", pod=with_env(env("A", "my.env-name", "MY_ENV.NAME", "MyEnvName1")))]),
    ),
    Case(
        "env var name starting with digit",
        pcs(cliques=[clique("a", pod=with_env(env("1VAR")))]),
        ("INVALID@" + f"{C0}.spec.podSpec.containers[0].env[0].name",),
        apiserver=True,
    ),
    Case(
        "duplicate env var names in same container",
        pcs(cliques=[clique("a", pod=with_env(env("A", "A")))]),
        ("DUPLICATE@" + f"{C0}.spec.podSpec.containers[0].env",),
    ),
    Case(
        "duplicate env var names in initContainers",
        pcs(cliques=[clique("a", pod=with_env(env("A"), env("B", "B")))]),
        ("DUPLICATE@" + f"{C0}.spec.podSpec.initContainers[0].env",),
    ),
    Case(
        "same env var name in different containers",
        pcs(cliques=[clique("a", pod=with_env(env("A"), env("A")))]),
    ),
    Case("empty env list", pcs(cliques=[clique("a", pod=with_env([]))])),
    Case(
        "no containers",
        pcs(cliques=[clique("a", pod={"containers": []})]),
        ("REQUIRED@" + f"{C0}.spec.podSpec.containers",),
    ),
    # ---- uniqueness ------------------------------------------------------------------------------------
    Case(
        "duplicate clique names",
        pcs(cliques=[clique("a", role="x"), clique("a", role="y")]),
        ("DUPLICATE@" + f"{T}.cliques.name",),
    ),
    Case(
        "duplicate role names",
        pcs(cliques=[clique("a", role="r"), clique("b", role="r")]),
        ("DUPLICATE@" + f"{T}.cliques.spec.roleName",),
        apiserver=True,
    ),
    Case(
        "role names omitted: defaulted to clique names, no duplicate",
        pcs(cliques=[clique("a", role=""), clique("b", role="")]),
        apiserver=True,
    ),
    # ---- scheduler names (TestValidateSchedulerNames) -----------------------------------------------------
    Case(
        "all same default-scheduler",
        pcs(
            cliques=[
                clique("a", pod=pod_spec(schedulerName="default-scheduler")),
                clique("b", pod=pod_spec(schedulerName="default-scheduler")),
            ]
        ),
    ),
    Case("all empty with default default-scheduler", two()),
    Case(
        "all empty with default kai-scheduler",
        pcs(cliques=[clique("a"), clique("b")], metadata=KAI_QUEUE),
        config=KAI_DEFAULT,
    ),
    Case(
        "mixed empty and default-scheduler",
        pcs(cliques=[clique("a"), clique("b", pod=pod_spec(schedulerName="default-scheduler"))]),
    ),
    Case(
        "mixed default-scheduler and kai-scheduler",
        pcs(
            cliques=[
                clique("a", pod=pod_spec(schedulerName="default-scheduler")),
                clique("b", pod=pod_spec(schedulerName="kai-scheduler")),
            ]
        ),
        ("INVALID@" + f"{T}.cliques.spec.podSpec.schedulerName",),
        config=KUBE_KAI,
    ),
    Case(
        "single kai-scheduler when enabled",
        pcs(cliques=[clique("a", pod=pod_spec(schedulerName="kai-scheduler"))], metadata=KAI_QUEUE),
        config=KUBE_KAI,
    ),
    Case(
        "single lpx-scheduler when enabled",
        pcs(cliques=[clique("a", pod=pod_spec(schedulerName="lpx-scheduler"))]),
        config=LPX,
    ),
    Case(
        "kai-scheduler when only default-scheduler is enabled",
        pcs(cliques=[clique("a", pod=pod_spec(schedulerName="kai-scheduler"))]),
        ("INVALID@" + f"{T}.cliques.spec.podSpec.schedulerName",),
        contains=("enabled in OperatorConfiguration: default-scheduler",),
        apiserver=True,
    ),
    Case(
        "unknown scheduler not enabled",
        pcs(cliques=[clique("a", pod=pod_spec(schedulerName="my-scheduler"))]),
        ("INVALID@" + f"{T}.cliques.spec.podSpec.schedulerName",),
        apiserver=True,
    ),
    Case(
        "mixed empty and kai when default is default-scheduler",
        pcs(cliques=[clique("a"), clique("b", pod=pod_spec(schedulerName="kai-scheduler"))]),
        ("INVALID@" + f"{T}.cliques.spec.podSpec.schedulerName",),
        config=KUBE_KAI,
    ),
    Case(
        "kai-scheduler without a queue",
        pcs(cliques=[clique("a", pod=pod_spec(schedulerName="kai-scheduler"))]),
        ("INVALID@metadata.labels",),
        contains=("no KAI queue is configured",),
        config=KUBE_KAI,
    ),
    Case(
        "lpx-scheduler refuses topology constraints",
        pcs(
            cliques=[clique("a", pod=pod_spec(schedulerName="lpx-scheduler"))], topologyConstraint=tc("rack")
        ),
        ("INVALID@spec.template",),
        config=LPX | TAS,
        topologies=TOPO,
    ),
    # ---- scaling groups (TestPodCliqueScalingGroupConfigValidation + ours) --------------------------------
    Case(
        "valid scaling group with replicas and minAvailable",
        grouped(replicas=3, min_available=2),
        apiserver=True,
    ),
    Case(
        "scaling group replicas negative",
        grouped(replicas=-1, min_available=1),
        ("INVALID@" + f"{G0}.replicas", "INVALID@" + f"{G0}.minAvailable"),
        apiserver=True,
    ),
    Case(
        "scaling group minAvailable zero",
        grouped(replicas=2, min_available=0),
        ("INVALID@" + f"{G0}.minAvailable",),
        apiserver=True,
    ),
    Case(
        "scaling group minAvailable greater than replicas",
        grouped(replicas=2, min_available=3),
        ("INVALID@" + f"{G0}.minAvailable",),
        contains=("must not be greater than replicas (2)",),
        apiserver=True,
    ),
    Case(
        "scaleConfig.minReplicas below minAvailable",
        grouped(replicas=3, min_available=2, scaleConfig={"minReplicas": 1, "maxReplicas": 5}),
        ("INVALID@" + f"{G0}.scaleConfig.minReplicas",),
        apiserver=True,
    ),
    Case("scaling group with partial configuration", grouped(replicas=None, min_available=None)),
    Case(
        "scaleConfig.maxReplicas below minReplicas",
        grouped(replicas=3, min_available=1, scaleConfig={"minReplicas": 3, "maxReplicas": 2}),
        ("INVALID@" + f"{G0}.scaleConfig.maxReplicas",),
        apiserver=True,
    ),
    Case(
        "scaleConfig.minReplicas defaults to replicas",
        grouped(replicas=2, min_available=1, scaleConfig={"maxReplicas": 4}),
    ),
    Case(
        "duplicate scaling group names",
        pcs(cliques=[clique("a"), clique("b")], groups=[group("g", ["a"]), group("g", ["b"])]),
        ("DUPLICATE@" + f"{T}.podCliqueScalingGroups.name",),
        apiserver=True,
    ),
    Case(
        "clique in two scaling groups",
        pcs(cliques=[clique("a"), clique("b")], groups=[group("g", ["a"]), group("h", ["a", "b"])]),
        ("DUPLICATE@" + f"{T}.podCliqueScalingGroups.cliqueNames",),
        contains=("at most one scaling group",),
        apiserver=True,
    ),
    Case(
        "clique repeated within one scaling group",
        pcs(cliques=[clique("a")], groups=[group("g", ["a", "a"])]),
        ("DUPLICATE@" + f"{T}.podCliqueScalingGroups.cliqueNames",),
    ),
    Case(
        "scaling group without cliques",
        pcs(cliques=[clique("a")], groups=[group("g", [])]),
        ("REQUIRED@" + f"{G0}.cliqueNames",),
        apiserver=True,
    ),
    # ---- terminationDelay, startup type, replicas, cliques ------------------------------------------------
    Case("terminationDelay omitted: defaulted to 4h", pcs(termination_delay=None), apiserver=True),
    Case(
        "terminationDelay zero",
        pcs(termination_delay="0s"),
        ("INVALID@" + f"{T}.terminationDelay",),
        contains=("terminationDelay must be greater than 0",),
        apiserver=True,
    ),
    Case("terminationDelay negative", pcs(termination_delay="-5m"), ("INVALID@" + f"{T}.terminationDelay",)),
    Case(
        "terminationDelay not a duration",
        pcs(termination_delay="soon"),
        ("INVALID@" + f"{T}.terminationDelay",),
        contains=("must be a duration such as 30s, 10m or 4h",),
        apiserver=True,
    ),
    Case("terminationDelay 10s", pcs(termination_delay="10s")),
    Case("terminationDelay 1h30m", pcs(termination_delay="1h30m")),
    Case("cliqueStartupType omitted: defaulted to AnyOrder", pcs(startup=None), apiserver=True),
    Case(
        "cliqueStartupType unknown", pcs(startup="Sometimes"), ("NOT_SUPPORTED@" + f"{T}.cliqueStartupType",)
    ),
    Case("negative spec.replicas", pcs(replicas=-1), ("INVALID@spec.replicas",)),
    Case("zero spec.replicas", pcs(replicas=0)),
    Case("no cliques", pcs(cliques=[]), ("REQUIRED@" + f"{T}.cliques",), apiserver=True),
    Case(
        "invalid clique label key",
        pcs(cliques=[clique("a", labels={"bad key": "v"})]),
        ("INVALID@" + f"{C0}.labels",),
    ),
    Case(
        "invalid clique label value",
        pcs(cliques=[clique("a", labels={"k": "-x"})]),
        ("INVALID@" + f"{C0}.labels[k]",),
        apiserver=True,
    ),
    Case(
        "invalid clique annotation key",
        pcs(cliques=[clique("a", annotations={"a/b/c": "v"})]),
        ("INVALID@" + f"{C0}.annotations",),
        apiserver=True,
    ),
    # ---- resource claim templates and sharing --------------------------------------------------------------
    Case("resource claim templates with unique names", pcs(resourceClaimTemplates=[rct("gpu"), rct("nic")])),
    Case(
        "resource claim template with empty name",
        pcs(resourceClaimTemplates=[rct("", requests=False)]),
        (
            "REQUIRED@" + f"{T}.resourceClaimTemplates[0].name",
            "REQUIRED@" + f"{T}.resourceClaimTemplates[0].templateSpec.spec.devices.requests",
        ),
    ),
    Case(
        "resource claim template with empty template spec",
        pcs(resourceClaimTemplates=[rct("gpu", requests=False)]),
        ("REQUIRED@" + f"{T}.resourceClaimTemplates[0].templateSpec.spec.devices.requests",),
    ),
    Case(
        "resource claim templates with duplicate names",
        pcs(resourceClaimTemplates=[rct("gpu", requests=False), rct("gpu", requests=False)]),
        (
            "REQUIRED@" + f"{T}.resourceClaimTemplates[0].templateSpec.spec.devices.requests",
            "REQUIRED@" + f"{T}.resourceClaimTemplates[1].templateSpec.spec.devices.requests",
            "DUPLICATE@" + f"{T}.resourceClaimTemplates.name",
        ),
    ),
    Case(
        "valid resource sharing refs",
        pcs(
            resourceClaimTemplates=[rct("gpu")],
            resourceSharing=[share("gpu"), share("external", namespace="other")],
        ),
    ),
    Case(
        "resource sharing ref with empty name",
        pcs(resourceSharing=[share("")]),
        ("REQUIRED@" + f"{T}.resourceSharing[0].name",),
    ),
    Case(
        "duplicate resource sharing refs",
        pcs(resourceSharing=[share("x"), share("x")]),
        ("DUPLICATE@" + f"{T}.resourceSharing[1].name",),
        apiserver=True,
    ),
    Case(
        "namespace set for an internal template",
        pcs(resourceClaimTemplates=[rct("gpu")], resourceSharing=[share("gpu", namespace="other")]),
        ("INVALID@" + f"{T}.resourceSharing[0].namespace",),
        apiserver=True,
    ),
    Case("external ref with namespace", pcs(resourceSharing=[share("external", namespace="other")])),
    Case(
        "resource sharing with unknown scope",
        pcs(resourceSharing=[share("x", scope="Sometimes")]),
        ("NOT_SUPPORTED@" + f"{T}.resourceSharing[0].scope",),
    ),
    Case(
        "PCS sharing filter with a known clique",
        pcs(resourceSharing=[share("x", filter={"childCliqueNames": ["a"]})]),
    ),
    Case(
        "PCS sharing filter with a known group",
        edit(
            grouped(), "spec.template.resourceSharing", [share("x", filter={"childScalingGroupNames": ["g"]})]
        ),
    ),
    Case(
        "PCS sharing filter with an unknown clique",
        pcs(resourceSharing=[share("x", filter={"childCliqueNames": ["zz"]})]),
        ("NOT_FOUND@" + f"{T}.resourceSharing[0].filter.childCliqueNames[0]",),
        apiserver=True,
    ),
    Case(
        "PCS sharing filter with an unknown group",
        pcs(resourceSharing=[share("x", filter={"childScalingGroupNames": ["zz"]})]),
        ("NOT_FOUND@" + f"{T}.resourceSharing[0].filter.childScalingGroupNames[0]",),
    ),
    Case(
        "PCS sharing filter that names nothing",
        pcs(resourceSharing=[share("x", filter={})]),
        ("REQUIRED@" + f"{T}.resourceSharing[0].filter",),
    ),
    Case(
        "PCSG sharing with a clique filter",
        grouped(resourceSharing=[share("x", filter={"childCliqueNames": ["b"]})]),
    ),
    Case(
        "PCSG sharing filter with a clique outside the group",
        grouped(resourceSharing=[share("x", filter={"childCliqueNames": ["a"]})]),
        ("NOT_FOUND@" + f"{G0}.resourceSharing[0].filter.childCliqueNames[0]",),
    ),
    Case(
        "duplicate clique-level sharing refs",
        pcs(cliques=[clique("a", resourceSharing=[share("x"), share("x")])]),
        ("DUPLICATE@" + f"{C0}.resourceSharing[1].name",),
    ),
    # ---- topology on create (TestValidateTASDisabledWithConstraints, …EnabledWhenDomainNot…, hierarchy) -----
    Case(
        "PCS constraint when TAS is disabled",
        topo_pcs(pcs_tc=tc("rack")),
        ("INVALID@" + f"{T}.topologyConstraint",),
        contains=("Topology Aware Scheduling is disabled",),
    ),
    Case(
        "clique constraint when TAS is disabled",
        topo_pcs(clique_tc=tc("rack")),
        ("INVALID@" + f"{C0}.topologyConstraint",),
    ),
    Case(
        "PCSG constraint when TAS is disabled",
        topo_pcs(group_tc=tc("rack")),
        ("INVALID@" + f"{G0}.topologyConstraint",),
    ),
    Case(
        "all constraints reported when TAS is disabled",
        topo_pcs(pcs_tc=tc("zone"), clique_tc=tc("rack"), group_tc=tc("rack"), member_tc=tc("host")),
        (
            "INVALID@" + f"{T}.topologyConstraint",
            "INVALID@" + f"{C0}.topologyConstraint",
            "INVALID@" + f"{C1}.topologyConstraint",
            "INVALID@" + f"{G0}.topologyConstraint",
        ),
    ),
    Case("no constraints when TAS is disabled", topo_pcs()),
    Case(
        "PCS domain not in cluster topology",
        topo_pcs(pcs_tc=tc("galaxy")),
        ("INVALID@" + f"{T}.topologyConstraint.pack.required",),
        config=TAS,
        topologies=TOPO,
    ),
    Case(
        "clique domain not in cluster topology",
        topo_pcs(clique_tc=tc("galaxy")),
        ("INVALID@" + f"{C0}.topologyConstraint.pack.required",),
        config=TAS,
        topologies=TOPO,
    ),
    Case(
        "PCSG domain not in cluster topology",
        topo_pcs(group_tc=tc("galaxy")),
        ("INVALID@" + f"{G0}.topologyConstraint.pack.required",),
        config=TAS,
        topologies=TOPO,
    ),
    Case(
        "valid domains in cluster topology",
        topo_pcs(
            pcs_tc=tc("zone"),
            clique_tc=tc("rack", name=None),
            group_tc=tc("block", name=None),
            member_tc=tc("host", name=None),
        ),
        config=TAS,
        topologies=TOPO,
    ),
    Case(
        "invalid domain stops before the hierarchy check",
        topo_pcs(pcs_tc=tc("galaxy"), clique_tc=tc("zone", name=None)),
        ("INVALID@" + f"{T}.topologyConstraint.pack.required",),
        config=TAS,
        topologies=TOPO,
    ),
    Case(
        "invalid child domain stops before the hierarchy check",
        topo_pcs(pcs_tc=tc("host"), clique_tc=tc("galaxy", name=None)),
        ("INVALID@" + f"{C0}.topologyConstraint.pack.required",),
        config=TAS,
        topologies=TOPO,
    ),
    Case(
        "PCS broader than PodClique",
        topo_pcs(pcs_tc=tc("zone"), clique_tc=tc("rack", name=None)),
        config=TAS,
        topologies=TOPO,
    ),
    Case(
        "PCS narrower than PodClique",
        topo_pcs(pcs_tc=tc("rack"), clique_tc=tc("zone", name=None)),
        ("INVALID@" + f"{T}.topologyConstraint",),
        contains=(
            "PodCliqueSet topology constraint domain 'rack' is narrower than PodClique 'a' topology constraint domain 'zone'",
        ),
        config=TAS,
        topologies=TOPO,
    ),
    Case(
        "PCS narrower than PCSG",
        topo_pcs(pcs_tc=tc("rack"), group_tc=tc("zone", name=None)),
        ("INVALID@" + f"{T}.topologyConstraint",),
        config=TAS,
        topologies=TOPO,
    ),
    Case(
        "PCSG narrower than PodClique",
        topo_pcs(group_tc=tc("rack"), member_tc=tc("zone", name=None)),
        ("INVALID@" + f"{G0}.topologyConstraint",),
        config=TAS,
        topologies=TOPO,
    ),
    Case(
        "same level everywhere",
        topo_pcs(pcs_tc=tc("rack"), group_tc=tc("rack", name=None), member_tc=tc("rack", name=None)),
        config=TAS,
        topologies=TOPO,
    ),
    Case(
        "violations at several levels",
        topo_pcs(pcs_tc=tc("host"), group_tc=tc("rack", name=None), member_tc=tc("zone", name=None)),
        (
            "INVALID@" + f"{T}.topologyConstraint",
            "INVALID@" + f"{T}.topologyConstraint",
            "INVALID@" + f"{G0}.topologyConstraint",
        ),
        config=TAS,
        topologies=TOPO,
    ),
    Case(
        "preferred domain narrower than a child's preferred",
        topo_pcs(pcs_tc=tc(preferred="host"), clique_tc=tc(preferred="zone", name=None)),
        ("INVALID@" + f"{T}.topologyConstraint.pack.preferred",),
        config=TAS,
        topologies=TOPO,
    ),
    Case(
        "custom domain hierarchy datacenter > host",
        topo_pcs(pcs_tc=tc("datacenter", name="dc"), clique_tc=tc("host", name=None)),
        config=TAS,
        topologies={"dc": ["datacenter", "host"]},
    ),
    Case(
        "custom domain hierarchy host > datacenter",
        topo_pcs(pcs_tc=tc("host", name="dc"), clique_tc=tc("datacenter", name=None)),
        ("INVALID@" + f"{T}.topologyConstraint",),
        config=TAS,
        topologies={"dc": ["datacenter", "host"]},
    ),
    Case(
        "PCS constraint without topologyName",
        topo_pcs(pcs_tc=tc("rack", name=None)),
        ("REQUIRED@" + f"{T}.topologyConstraint.topologyName",),
        config=TAS,
        topologies=TOPO,
    ),
    Case(
        "child inherits topologyName from PCS",
        topo_pcs(pcs_tc=tc("zone"), clique_tc=tc("rack", name=None)),
        config=TAS,
        topologies=TOPO,
    ),
    Case(
        "child topologyName matching PCS",
        topo_pcs(pcs_tc=tc("zone"), clique_tc=tc("rack")),
        config=TAS,
        topologies=TOPO,
    ),
    Case(
        "child topologyName differing from PCS",
        topo_pcs(pcs_tc=tc("zone"), clique_tc=tc("rack", name="other")),
        ("INVALID@" + f"{C0}.topologyConstraint.topologyName",),
        config=TAS,
        topologies=TOPO,
    ),
    Case("child-only explicit constraint", topo_pcs(clique_tc=tc("rack")), config=TAS, topologies=TOPO),
    Case(
        "standalone clique does not inherit from an unrelated PCSG",
        topo_pcs(group_tc=tc("rack"), clique_tc=tc("rack", name=None)),
        ("REQUIRED@" + f"{C0}.topologyConstraint.topologyName",),
        config=TAS,
        topologies=TOPO,
    ),
    Case(
        "ClusterTopologyBinding not found",
        topo_pcs(pcs_tc=tc("rack", name="nope")),
        ("INVALID@" + f"{T}.topologyConstraint.topologyName",),
        contains=('ClusterTopologyBinding "nope" not found',),
        config=TAS,
        topologies=TOPO,
        apiserver=True,  # the local cluster's operator runs with topology-aware scheduling on
    ),
    Case(
        "ClusterTopologyBinding lookup fails",
        topo_pcs(pcs_tc=tc("rack")),
        ("INTERNAL@" + f"{T}.topologyConstraint.topologyName",),
        config=TAS,
        topology_lookup_fails=True,
    ),
    Case(
        "preferred coarser than required: warning",
        topo_pcs(pcs_tc=tc("rack", preferred="zone")),
        config=TAS,
        topologies=TOPO,
        warnings=("pack.preferred is coarser than",),
    ),
]

# ---- MNNVL annotations (mnnvl/webhook_test.go, handler/mnnvl_test.go) ------------------------------------
for level in ("pcs", "clique", "group"):
    CASES += [
        Case(f"MNNVL {level}: valid group, feature enabled", annotated(level, "nvl-a"), config=MNNVL_ON),
        Case(
            f"MNNVL {level}: valid group, feature disabled",
            annotated(level, "nvl-a"),
            (f"INVALID@{mnnvl_path(level)}",),
            contains=("MNNVL is not enabled",),
        ),
        Case(f"MNNVL {level}: 'none', feature enabled", annotated(level, "none"), config=MNNVL_ON),
        Case(f"MNNVL {level}: 'none', feature disabled", annotated(level, "none")),
        Case(
            f"MNNVL {level}: uppercase value",
            annotated(level, "NVL"),
            (f"INVALID@{mnnvl_path(level)}",),
            contains=("not a valid DNS-1123 label",),
            config=MNNVL_ON,
        ),
        Case(
            f"MNNVL {level}: empty value",
            annotated(level, ""),
            (f"INVALID@{mnnvl_path(level)}",),
            contains=("must not be empty",),
            config=MNNVL_ON,
        ),
        Case(
            f"MNNVL {level}: unchanged on update",
            annotated(level, "nvl-a"),
            old=stored(annotated(level, "nvl-a")),
            config=MNNVL_ON,
        ),
        Case(
            f"MNNVL {level}: added on update",
            annotated(level, "nvl-a"),
            (f"FORBIDDEN@{mnnvl_path(level)}",),
            old=stored(annotated(level, None)),
            contains=("cannot be added",),
            config=MNNVL_ON,
        ),
        Case(
            f"MNNVL {level}: removed on update",
            annotated(level, None),
            (f"FORBIDDEN@{mnnvl_path(level)}",),
            old=stored(annotated(level, "nvl-a")),
            contains=("cannot be removed",),
            config=MNNVL_ON,
        ),
        Case(
            f"MNNVL {level}: changed on update",
            annotated(level, "nvl-b"),
            (f"FORBIDDEN@{mnnvl_path(level)}",),
            old=stored(annotated(level, "nvl-a")),
            contains=("immutable",),
            config=MNNVL_ON,
        ),
    ]
CASES += [
    Case("MNNVL: no annotation, feature enabled", annotated("pcs", None), config=MNNVL_ON),
    Case(
        "MNNVL: multiple cliques, one invalid",
        edit(annotated("clique", "nvl-a"), "spec.template.cliques.1.annotations", {MNNVL: "Bad"}),
        (f"INVALID@{C1}.annotations.{MNNVL}",),
        config=MNNVL_ON,
    ),
    Case(
        "MNNVL: other annotations changed, group unchanged",
        edit(annotated("pcs", "nvl-a"), "metadata.annotations", {MNNVL: "nvl-a", "x": "y"}),
        old=stored(annotated("pcs", "nvl-a")),
        config=MNNVL_ON,
    ),
    Case(
        "MNNVL: cliques reordered (AnyOrder), annotations unchanged per clique",
        edit(pcs(cliques=[clique("b"), clique("a", annotations={MNNVL: "nvl-a"})]), "spec.replicas", 1),
        old=stored(pcs(cliques=[clique("a", annotations={MNNVL: "nvl-a"}), clique("b")])),
        config=MNNVL_ON,
    ),
    Case(
        "MNNVL: cliques reordered and one group changed",
        pcs(cliques=[clique("b"), clique("a", annotations={MNNVL: "nvl-b"})]),
        (f"FORBIDDEN@{C1}.annotations.{MNNVL}",),
        old=stored(pcs(cliques=[clique("a", annotations={MNNVL: "nvl-a"}), clique("b")])),
        config=MNNVL_ON,
    ),
]

# ---- updates (TestPodCliqueUpdateValidation, TestImmutableFieldsValidation, PCSG updates, topology) ----------
BASE = two()
BASE_EXPLICIT = pcs(startup=EXPLICIT, cliques=[clique("a"), clique("b", starts_after=["a"])])
BASE_IN_ORDER = pcs(startup=IN_ORDER, cliques=[clique("a"), clique("b")])
BASE_GROUPS = pcs(
    cliques=[clique("a"), clique("b"), clique("c")],
    groups=[group("g", ["b", "c"], replicas=3, min_available=1)],
)
BASE_RCT = pcs(
    resourceClaimTemplates=[rct("gpu")],
    resourceSharing=[share("gpu")],
    cliques=[clique("a", resourceSharing=[share("gpu")])],
)
CASES += [
    Case(
        "update: same cliques in another order (AnyOrder)",
        pcs(cliques=[clique("b"), clique("a")]),
        old=stored(BASE),
    ),
    Case(
        "update: adding a clique",
        pcs(cliques=[clique("a"), clique("b"), clique("c")]),
        ("FORBIDDEN@" + f"{T}.cliques", "FORBIDDEN@" + f"{T}.cliques[2].name"),
        old=stored(BASE),
        contains=("not allowed to change clique composition",),
        apiserver=True,
    ),
    Case(
        "update: removing a clique",
        pcs(cliques=[clique("a")]),
        ("FORBIDDEN@" + f"{T}.cliques",),
        old=stored(BASE),
        contains=("not allowed to change clique composition",),
    ),
    Case(
        "update: renaming a clique",
        pcs(cliques=[clique("a"), clique("z")]),
        ("FORBIDDEN@" + f"{T}.cliques[1].name",),
        old=stored(BASE),
    ),
    Case(
        "update: InOrder does not allow reordering",
        pcs(startup=IN_ORDER, cliques=[clique("b"), clique("a")]),
        ("INVALID@" + f"{T}.cliques[0]", "INVALID@" + f"{T}.cliques[1]"),
        old=stored(BASE_IN_ORDER),
        contains=("clique order cannot be changed when StartupType is InOrder or Explicit",),
    ),
    Case(
        "update: Explicit does not allow reordering",
        pcs(startup=EXPLICIT, cliques=[clique("b", starts_after=["a"]), clique("a")]),
        ("INVALID@" + f"{T}.cliques[0]", "INVALID@" + f"{T}.cliques[1]"),
        old=stored(BASE_EXPLICIT),
    ),
    Case(
        "update: InOrder keeps the same order",
        pcs(startup=IN_ORDER, cliques=[clique("a", replicas=2), clique("b")]),
        old=stored(BASE_IN_ORDER),
    ),
    Case(
        "update: priorityClassName can change",
        two(priorityClassName="high"),
        old=stored(BASE),
        apiserver=True,
    ),
    Case(
        "update: roleName is immutable",
        pcs(cliques=[clique("a", role="other"), clique("b")]),
        ("INVALID@" + f"{C0}.spec.roleName",),
        old=stored(BASE),
        contains=("field is immutable",),
        apiserver=True,
    ),
    Case(
        "update: minAvailable is immutable",
        pcs(cliques=[clique("a", replicas=2, min_available=2), clique("b")]),
        ("INVALID@" + f"{C0}.spec.minAvailable",),
        old=stored(BASE),
        contains=("field is immutable",),
        apiserver=True,
    ),
    Case(
        "update: startsAfter is immutable",
        pcs(startup=EXPLICIT, cliques=[clique("a"), clique("b", starts_after=[])]),
        ("INVALID@" + f"{C1}.spec.startsAfter",),
        old=stored(BASE_EXPLICIT),
    ),
    Case(
        "update: several immutable fields",
        pcs(cliques=[clique("a", role="x", replicas=3, min_available=3), clique("b")]),
        ("INVALID@" + f"{C0}.spec.roleName", "INVALID@" + f"{C0}.spec.minAvailable"),
        old=stored(BASE),
    ),
    Case(
        "update: schedulerName is immutable",
        pcs(
            cliques=[
                clique("a", pod=pod_spec(schedulerName="default-scheduler")),
                clique("b", pod=pod_spec(schedulerName="default-scheduler")),
            ]
        ),
        ("INVALID@" + f"{C0}.spec.podSpec.schedulerName", "INVALID@" + f"{C1}.spec.podSpec.schedulerName"),
        old=stored(BASE),
    ),
    Case(
        "update: resourceClaimTemplates are immutable",
        edit(BASE_RCT, "spec.template.resourceClaimTemplates", [rct("gpu"), rct("nic")]),
        ("INVALID@" + f"{T}.resourceClaimTemplates",),
        old=stored(BASE_RCT),
    ),
    Case(
        "update: PCS resourceSharing is immutable",
        edit(BASE_RCT, "spec.template.resourceSharing", [share("gpu", scope="PerReplica")]),
        ("INVALID@" + f"{T}.resourceSharing",),
        old=stored(BASE_RCT),
    ),
    Case(
        "update: clique resourceSharing is immutable",
        edit(BASE_RCT, "spec.template.cliques.0.resourceSharing", DELETE),
        ("INVALID@" + f"{C0}.resourceSharing",),
        old=stored(BASE_RCT),
    ),
    Case(
        "update: resourceClaimTemplates unchanged", edit(BASE_RCT, "spec.replicas", 3), old=stored(BASE_RCT)
    ),
    Case(
        "update: cliqueStartupType is immutable",
        pcs(startup=IN_ORDER, cliques=[clique("a"), clique("b")]),
        ("INVALID@" + f"{T}.cliqueStartupType",),
        old=stored(BASE),
        contains=("field is immutable",),
        apiserver=True,
    ),
    Case(
        "update: scaling, template and replicas changes are allowed",
        edit(edit(BASE_GROUPS, "spec.replicas", 3), "spec.template.podCliqueScalingGroups.0.replicas", 5),
        old=stored(BASE_GROUPS),
        apiserver=True,
    ),
    Case(
        "update: pod template change is allowed",
        edit(BASE, "spec.template.cliques.0.spec.podSpec.containers.0.image", "nginx:1.27"),
        old=stored(BASE),
        apiserver=True,
    ),
    Case("update: same scaling groups", BASE_GROUPS, old=stored(BASE_GROUPS)),
    Case(
        "update: scaling group cliqueNames are immutable",
        edit(BASE_GROUPS, "spec.template.podCliqueScalingGroups.0.cliqueNames", ["c", "b"]),
        ("INVALID@" + f"{G0}.cliqueNames",),
        old=stored(BASE_GROUPS),
        apiserver=True,
    ),
    Case(
        "update: scaling group minAvailable is immutable",
        edit(BASE_GROUPS, "spec.template.podCliqueScalingGroups.0.minAvailable", 2),
        ("INVALID@" + f"{G0}.minAvailable",),
        old=stored(BASE_GROUPS),
        apiserver=True,
    ),
    Case(
        "update: adding a scaling group",
        edit(
            BASE_GROUPS,
            "spec.template.podCliqueScalingGroups",
            [group("g", ["b", "c"], replicas=3, min_available=1), group("h", ["a"])],
        ),
        ("FORBIDDEN@" + f"{T}.podCliqueScalingGroups",),
        old=stored(BASE_GROUPS),
        contains=("not allowed to add or remove",),
    ),
    Case(
        "update: removing a scaling group",
        edit(BASE_GROUPS, "spec.template.podCliqueScalingGroups", DELETE),
        ("FORBIDDEN@" + f"{T}.podCliqueScalingGroups",),
        old=stored(BASE_GROUPS),
    ),
    Case(
        "update: no scaling groups to an empty list",
        edit(BASE, "spec.template.podCliqueScalingGroups", []),
        old=stored(BASE),
    ),
    Case(
        "update: scaling group resourceSharing is immutable",
        edit(BASE_GROUPS, "spec.template.podCliqueScalingGroups.0.resourceSharing", [share("x")]),
        ("INVALID@" + f"{G0}.resourceSharing",),
        old=stored(BASE_GROUPS),
    ),
    Case(
        "update: invalid new object is refused before immutability",
        pcs(cliques=[clique("a", replicas=2, min_available=3), clique("b")]),
        ("INVALID@" + f"{C0}.spec.minAvailable",),
        old=stored(BASE),
    ),
    Case(
        "update: object stored without defaults (by Grove, or before our webhooks) stays updatable",
        pcs(
            replicas=2,
            cliques=[clique("a", role="", min_available=None), clique("b", role="", min_available=None)],
        ),
        old=pcs(cliques=[clique("a", role="", min_available=None), clique("b", role="", min_available=None)]),
    ),
    Case(
        "update: clique replicas change keeps a never-set minAvailable",
        pcs(cliques=[clique("a", role="", replicas=3, min_available=None), clique("b", role="")]),
        old=pcs(cliques=[clique("a", role="", replicas=2, min_available=None), clique("b", role="")]),
    ),
    Case(
        "update: a never-set minAvailable is immutable once defaulted",
        pcs(cliques=[clique("a", role="", replicas=2, min_available=1), clique("b", role="")]),
        ("INVALID@" + f"{C0}.spec.minAvailable",),
        old=pcs(cliques=[clique("a", role="", replicas=2, min_available=None), clique("b", role="")]),
        contains=("(was 2)",),
    ),
    # topology on update (TestValidateUpdateTopology…)
    Case(
        "update: topology unchanged",
        topo_pcs(pcs_tc=tc("rack")),
        old=stored(topo_pcs(pcs_tc=tc("rack"))),
        config=TAS,
    ),
    Case(
        "update: topologyName changed",
        topo_pcs(pcs_tc=tc("rack", name="other")),
        ("FORBIDDEN@" + f"{T}.topologyConstraint.topologyName",),
        old=stored(topo_pcs(pcs_tc=tc("rack"))),
        config=TAS,
    ),
    Case(
        "update: PCS constraint added",
        topo_pcs(pcs_tc=tc("rack")),
        ("FORBIDDEN@" + f"{T}.topologyConstraint.topologyName",),
        old=stored(topo_pcs()),
        config=TAS,
    ),
    Case(
        "update: PCS constraint removed",
        topo_pcs(),
        ("FORBIDDEN@" + f"{T}.topologyConstraint.topologyName",),
        old=stored(topo_pcs(pcs_tc=tc("rack"))),
        config=TAS,
    ),
    Case(
        "update: PCS constraint changed",
        topo_pcs(pcs_tc=tc("zone")),
        ("FORBIDDEN@" + f"{T}.topologyConstraint",),
        old=stored(topo_pcs(pcs_tc=tc("rack"))),
        contains=("cannot be changed from required='rack'",),
        config=TAS,
    ),
    Case(
        "update: clique constraint changed",
        topo_pcs(clique_tc=tc("zone")),
        ("FORBIDDEN@" + f"{C0}.topologyConstraint",),
        old=stored(topo_pcs(clique_tc=tc("rack"))),
        config=TAS,
    ),
    Case(
        "update: clique constraint added",
        topo_pcs(clique_tc=tc("zone")),
        ("FORBIDDEN@" + f"{C0}.topologyConstraint",),
        old=stored(topo_pcs()),
        contains=("cannot be added after creation",),
        config=TAS,
    ),
    Case(
        "update: clique constraint removed",
        topo_pcs(),
        ("FORBIDDEN@" + f"{C0}.topologyConstraint",),
        old=stored(topo_pcs(clique_tc=tc("rack"))),
        contains=("cannot be removed after creation",),
        config=TAS,
    ),
    Case(
        "update: PCSG constraint changed",
        topo_pcs(group_tc=tc("zone")),
        ("FORBIDDEN@" + f"{G0}.topologyConstraint",),
        old=stored(topo_pcs(group_tc=tc("rack"))),
        config=TAS,
    ),
    Case(
        "update: PCSG constraint added",
        topo_pcs(group_tc=tc("zone")),
        ("FORBIDDEN@" + f"{G0}.topologyConstraint",),
        old=stored(topo_pcs()),
        config=TAS,
    ),
    Case(
        "update: PCSG constraint removed",
        topo_pcs(),
        ("FORBIDDEN@" + f"{G0}.topologyConstraint",),
        old=stored(topo_pcs(group_tc=tc("rack"))),
        config=TAS,
    ),
    Case(
        "update: several constraints changed",
        topo_pcs(pcs_tc=tc("zone"), clique_tc=tc("block", name=None), member_tc=tc("block", name=None)),
        (
            "FORBIDDEN@" + f"{T}.topologyConstraint",
            "FORBIDDEN@" + f"{C0}.topologyConstraint",
            "FORBIDDEN@" + f"{C1}.topologyConstraint",
        ),
        old=stored(
            topo_pcs(pcs_tc=tc("block"), clique_tc=tc("rack", name=None), member_tc=tc("rack", name=None))
        ),
        config=TAS,
    ),
    Case(
        "update: packDomain moved to pack.required at the same level",
        topo_pcs(pcs_tc=tc("rack")),
        old=stored(topo_pcs(pcs_tc=tc(packDomain="rack"))),
        config=TAS,
    ),
    Case(
        "update: packDomain moved to a different level",
        topo_pcs(pcs_tc=tc("zone")),
        ("FORBIDDEN@" + f"{T}.topologyConstraint",),
        old=stored(topo_pcs(pcs_tc=tc(packDomain="rack"))),
        contains=("deprecated packDomain migration",),
        config=TAS,
    ),
    Case(
        "update: packDomain migration that changes preferred",
        topo_pcs(pcs_tc=tc("rack", preferred="zone")),
        ("FORBIDDEN@" + f"{T}.topologyConstraint",),
        old=stored(topo_pcs(pcs_tc=tc(packDomain="rack"))),
        config=TAS,
    ),
    Case(
        "update: packDomain kept: deprecation warning",
        topo_pcs(pcs_tc=tc(packDomain="rack")),
        old=stored(topo_pcs(pcs_tc=tc(packDomain="rack"))),
        config=TAS,
        warnings=("packDomain is deprecated; use",),
    ),
]
